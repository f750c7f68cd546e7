"""The presets: valid parameter data, the write-up's settings, and what each one does."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flexdiffuse import GuidanceParams, JobParams, guide
from flexdiffuse.engine import moves_tokens
from flexdiffuse.params import SPECS_BY_NAME
from flexdiffuse.presets import (
    PRESET_FIELDS,
    PRESETS,
    Preset,
    _check,
    find_preset,
    preset_values,
)
from flexdiffuse.preview import explain
from tests.helpers import random_tokens

WRITEUP = {  # (threshold_mult, threshold_floor, clustered, linear, max_guidance)
    "original": (0.25, 0.75, 0.15, 0.5, 0.35),  # the original UI's sliders
    "strong": (1.0, 0.2, 0.0, 1.0, 1.0),  # deer, tuned settings
    "style": (0.0, 0.2, 0.0, 1.0, 1.0),  # deer, "setting threshold = 0"
    "away": (-0.25, 0.0, 0.0, 1.0, 1.0),  # turtle, tuned settings (floor: see presets.py)
    "concepts": (0.0, 0.75, 0.0, 0.0, 0.0),  # creepy tree: every method and the max at 0
}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.key)
def test_every_preset_sets_the_same_fields_to_valid_values(preset):
    assert tuple(preset.values) == PRESET_FIELDS
    assert all(SPECS_BY_NAME[name].engine for name in PRESET_FIELDS)
    params = JobParams().replace(**preset.values)
    assert {name: params.get(name) for name in PRESET_FIELDS} == dict(preset.values)
    assert all((preset.label, preset.description, preset.source))


@pytest.mark.parametrize(("key", "expected"), WRITEUP.items())
def test_presets_hold_the_write_ups_settings(key, expected):
    values = preset_values(key)
    names = ("threshold_mult", "threshold_floor", "clustered", "linear", "max_guidance")
    assert tuple(values[name] for name in names) == expected
    assert (values["order"], values["reuse"], values["auto_floor"]) == ("fit", True, False)


def test_original_defaults_are_the_defaults():
    assert GuidanceParams().replace(**preset_values("original")) == GuidanceParams()


def test_presets_are_found_by_key_or_label_in_any_case():
    assert find_preset("strong") is find_preset("  STRONG: Matches and Style ")
    with pytest.raises(ValueError, match=r"Unknown preset 'loud'; the presets are 'original'"):
        find_preset("loud")
    with pytest.raises(ValueError, match="Unknown preset 3"):
        find_preset(3)


def test_bad_preset_data_is_refused():
    good = PRESETS[0]
    missing = Preset("x", "Y", "d", "s", {k: v for k, v in good.values.items() if k != "reuse"})
    with pytest.raises(ValueError, match="must set exactly"):
        _check((missing,))
    bad = Preset("x", "Y", "d", "s", {**good.values, "linear": 3.0})
    with pytest.raises(ValueError, match="linear"):
        _check((bad,))
    with pytest.raises(ValueError, match="unique"):
        _check((good, dataclasses.replace(good, key="other")))


def test_concepts_only_moves_nothing_without_concepts():
    params = GuidanceParams(**preset_values("concepts"))
    assert not moves_tokens(params)
    assert moves_tokens(params, concepts=True)


def example():
    image = random_tokens(120, 16, seed=1)
    text = random_tokens(77, 16, seed=2)
    return 0.6 * text + 0.4 * image[torch.arange(77) % 120], image


def test_style_only_moves_the_end_of_the_prompt_more_than_its_start():
    text, image = example()
    reports = explain(text, image, GuidanceParams(**preset_values("style")))
    weights = [r.weight for r in reports]
    assert weights[0] == 0
    assert weights == sorted(weights)  # linear alone: rising toward the style end
    strong = explain(text, image, GuidanceParams(**preset_values("strong")))
    assert sum(r.whole for r in strong) > sum(r.whole for r in reports)


def test_away_pushes_the_start_of_the_prompt_away_from_its_matches():
    text, image = example()
    params = GuidanceParams(**preset_values("away"))
    reports = explain(text, image, params)
    pushed = [r for r in reports if r.weight < 0]
    assert pushed
    assert all(r.position <= 19 for r in pushed)  # linear k/75 - 0.25 < 0 for k < 19
    # The reason for floor 0: at the automatic floor (the turtle run's, before the
    # whole-vector blend) a negative multiplier leaves the weights alone (§15).
    auto = params.replace(auto_floor=True)
    style = params.replace(threshold_mult=0)
    assert torch.equal(guide(text, image, auto), guide(text, image, style))
