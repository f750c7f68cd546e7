"""A1111 entry point: makes the FlexDiffuse script and its callbacks known to the webui.

A1111 runs this file with the extension's folder on ``sys.path``, so the ``flexdiffuse``
package beside ``scripts/`` imports whatever the folder is called.
"""

from flexdiffuse.webui.script import FlexDiffuseScript, register_callbacks

__all__ = ["FlexDiffuseScript"]

register_callbacks()
