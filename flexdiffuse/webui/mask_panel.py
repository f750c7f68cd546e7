"""The panel's reference masks: the picture each editor holds, and what a paste says of masks.

Each guidance image gets the host's own image editor (``Host.mask_editor``, placed by
``ui.py``) holding a copy of the image, upright, to paint the part that may be taken; the
copy follows the image (a new image clears the strokes). A mask is no parameter: infotext
records its digest beside the image's, and neither a paste nor "Send to img2img" can give it
back (gradio 3 cannot even copy an editor's strokes), so a pasted infotext that had masks says
so under the panel's top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageOps

from .args import GUIDANCE_INPUTS, MASK_INPUTS, describe_input
from .infotext import PasteReader, image_key, is_flexdiffuse_infotext

MASK_NOTE = "masks_note"
"""The control name of the note that says which pasted masks could not be restored."""

MASK_HINT = (
    "Paint over the part of the image that may be taken (patches at least half covered); "
    "nothing painted: the whole image. The API takes a mask image: white may be taken."
)


def editor_picture(image: Image.Image | None) -> Image.Image | None:
    """The picture the mask is painted on: the guidance image as shown (upright)."""
    return ImageOps.exif_transpose(image) if image is not None else None


def masks_note(infotext: Mapping[str, Any]) -> str | None:
    """What a paste says of the masks the pasted image was made with ("" for none; None
    leaves the note alone for infotext that is not FlexDiffuse's)."""
    if not is_flexdiffuse_infotext(infotext):
        return None
    masked = [
        f"{describe_input(name)} (mask {infotext[key]})"
        for name in GUIDANCE_INPUTS
        if (key := image_key(MASK_INPUTS[name])) in infotext
    ]
    if not masked:
        return ""
    return (
        f"**The pasted image was made with masks on the {', '.join(masked)}.** Infotext "
        "holds a mask's digest, not the mask: the mask editors keep what they hold (a new image, "
        "as Send to img2img gives, clears its mask). Paint the masks again where needed."
    )


MASK_READERS: dict[str, PasteReader] = {MASK_NOTE: masks_note}
"""The paste reader of the masks' note (the masks themselves are not restored)."""
