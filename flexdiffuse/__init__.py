"""FlexDiffuse: guide Stable Diffusion with an image, with no training and no extra network.

The core engine needs only torch (and transformers + Pillow for :class:`ImageEncoder`); it
imports nothing from a webui, whose glue lives in :mod:`flexdiffuse.webui`.
"""

from .encoder import DEFAULT_MODEL_SD1, ImageEncoder, ModelLoadError
from .engine import PURE_IMAGE_WARNING, GuidancePlan, guide, plan_guidance, pure_image_guidance
from .params import PARAM_SPECS, GuidanceParams, JobParams, ParamSpec

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_MODEL_SD1",
    "PARAM_SPECS",
    "PURE_IMAGE_WARNING",
    "GuidanceParams",
    "GuidancePlan",
    "ImageEncoder",
    "JobParams",
    "ModelLoadError",
    "ParamSpec",
    "__version__",
    "guide",
    "plan_guidance",
    "pure_image_guidance",
]
