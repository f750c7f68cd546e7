"""FlexDiffuse: guide Stable Diffusion with an image, with no training and no extra network.

The core engine needs only torch (and transformers + Pillow for :class:`ImageEncoder`); it
imports nothing from the A1111 webui, whose glue lives in :mod:`flexdiffuse.webui`.
"""

from .encoder import DEFAULT_MODEL_SD1, ImageEncoder, ModelLoadError
from .engine import PURE_IMAGE_WARNING, guide, pure_image_guidance
from .params import PARAM_SPECS, GuidanceParams, ParamSpec

__all__ = [
    "DEFAULT_MODEL_SD1",
    "PARAM_SPECS",
    "PURE_IMAGE_WARNING",
    "GuidanceParams",
    "ImageEncoder",
    "ModelLoadError",
    "ParamSpec",
    "guide",
    "pure_image_guidance",
]
