"""The AUTOMATIC1111 WebUI glue: the panel, settings, infotext, X/Y/Z axes and sampling hooks.

Only :mod:`.host`, :mod:`.script`, :mod:`.settings`, :mod:`.ui` and :mod:`.prepare` touch A1111
(its ``modules`` package); importing this package itself does not, so the plain-Python parts
(:mod:`.args`, :mod:`.conds`, :mod:`.job`, :mod:`.infotext`, :mod:`.xyz`, :mod:`.families`,
:mod:`.models`) work and are tested without a webui.
"""
