"""The webui glue (A1111 and every Forge): panel, settings, infotext, X/Y/Z axes, sampling hooks.

Only :mod:`.hosts` (one :class:`~.hosts.Host` per backend) and :mod:`.script` import the
webui's ``modules`` (ruff's TID251 enforces it); everything else gets the host as an object,
so it works and is tested without a webui. Importing this package imports no webui module.
"""
