"""The webui decides as ComfyUI does (the core's one rule each), in every fake host.

tests/comfyui/test_one_engine.py checks the same behaviours on the fake ComfyUI; the refiner
is in test_trust.py, presets against named values in test_presets.py.
"""

from __future__ import annotations

import pytest
import torch
from modules import shared

from flexdiffuse.engine import PURE_IMAGE_WARNING
from flexdiffuse.webui import settings
from tests.webui.conftest import gradient, use_checkpoint

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE = gradient()


def test_a_prompt_is_empty_by_its_states_so_an_edit_to_nothing_takes_the_image(webui):
    # "[a cat::2]" is "a cat" for two steps, then nothing: the text is not empty, the
    # conditioning of steps 3-4 is the empty prompt's, which the image replaces.
    job = {"prompt": "[a cat::2]", "steps": 4}
    guided = webui.txt2img(webui.args(image=IMAGE), **job)
    empty = webui.txt2img(webui.args(image=IMAGE), prompt="", steps=4)
    steps = guided.cond_steps()
    assert not torch.equal(steps[0], empty.cond_steps()[0])  # "a cat": guided as a prompt
    assert torch.equal(steps[-1], empty.cond_steps()[-1])  # then the image replaces ""
    assert PURE_IMAGE_WARNING in guided.processed.comments


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_the_sdxl_vit_l_only_setting_leaves_other_families_guided(webui, family):
    use_checkpoint(family)
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = True
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=2)
    assert "FlexDiffuse: True" in job.processed.infotexts[0]
    assert "stopped" not in job.processed.comments
