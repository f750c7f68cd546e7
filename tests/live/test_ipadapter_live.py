"""FlexDiffuse with the host's own IP-Adapter (Forge's built-in ControlNet) in one job.

Forge Neo ships IP-Adapter as a ControlNet preprocessor ("CLIP-ViT-H (IPAdapter)") and model
type. These tests run where the host lists both, i.e. where an IP-Adapter SD 1.5 file is in
its ``models/ControlNet`` and the ViT-H/14 image encoder in ``models/ControlNetPreprocessor``
(random ones: ``python -m tests.live_comfy.random_ipadapter DIR --vit-h``, linked as
``CLIP-ViT-H-14.safetensors``, the name the preprocessor loads); elsewhere they skip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flexdiffuse.webui.infotext import ENABLED_KEY, image_key
from tests.live.conftest import first_pixels, info, ok

MODULE = "CLIP-ViT-H (IPAdapter)"


@pytest.fixture(scope="module")
def ipadapter_unit(webui, guidance_image) -> dict[str, Any]:
    modules = webui.get("/controlnet/module_list")
    if modules.status != 200:
        pytest.skip("this host has no ControlNet API (/controlnet/module_list)")
    if MODULE not in modules.body.get("module_list", []):
        pytest.skip(f"this host's ControlNet has no {MODULE!r} preprocessor")
    models = ok(webui.get("/controlnet/model_list")).get("model_list", [])
    model = next((m for m in models if "ip-adapter_sd15" in m.lower()), None)
    if model is None:
        pytest.skip(f"no IP-Adapter SD 1.5 model in this host's models/ControlNet: {models}")
    return {
        "enabled": True,
        "module": MODULE,
        "model": model,
        "weight": 1.0,
        "image": guidance_image,
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "pixel_perfect": False,
    }


def job(webui, guidance: Any = None, unit: dict[str, Any] | None = None) -> Any:
    scripts = {"ControlNet": {"args": [unit]}} if unit else {}
    return ok(webui.job(guidance=guidance, alwayson_scripts=scripts))


def test_a_guided_job_with_an_ipadapter_unit_records_both_and_differs_from_each(
    webui, guidance_image, ipadapter_unit
):
    guidance = [{"image": guidance_image}]
    both = job(webui, guidance, ipadapter_unit)
    infotext = info(both)["infotexts"][0]
    assert f"{ENABLED_KEY}: True" in infotext
    assert f"{image_key('image')}: " in infotext
    assert "ControlNet 0: " in infotext
    assert MODULE in infotext
    assert ipadapter_unit["model"] in infotext
    flexdiffuse = job(webui, guidance)
    ipadapter = job(webui, unit=ipadapter_unit)
    assert not np.array_equal(first_pixels(both), first_pixels(flexdiffuse))
    assert not np.array_equal(first_pixels(both), first_pixels(ipadapter))
