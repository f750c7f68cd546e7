"""The AUTOMATIC1111 WebUI glue: the panel, settings, infotext, X/Y/Z axes and sampling hooks.

Only :mod:`.host`, :mod:`.script`, :mod:`.settings` and :mod:`.ui` import A1111's ``modules``;
:mod:`.prepare` and :mod:`.preview` reach it through :mod:`.host`. Importing this package itself
does not, so the plain-Python parts (:mod:`.args`, :mod:`.conds`, :mod:`.job`, :mod:`.infotext`,
:mod:`.xyz`, :mod:`.families`, :mod:`.models`) work and are tested without a webui.
"""
