"""FlexDiffuse: guide Stable Diffusion with an image, with no training and no extra network.

The core engine needs torch, numpy and Pillow (and transformers for :class:`ImageEncoder`); it
imports no host: the webui glue lives in :mod:`flexdiffuse.webui`, the ComfyUI nodes in
:mod:`flexdiffuse.comfy`.
"""

from ._version import read_version
from .encoder import DEFAULT_MODEL_SD1, ImageEncoder, ModelLoadError
from .engine import PURE_IMAGE_WARNING, GuidancePlan, guide, plan_guidance, pure_image_guidance
from .params import PARAM_SPECS, GuidanceParams, JobParams, ParamSpec

__version__ = read_version()

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
