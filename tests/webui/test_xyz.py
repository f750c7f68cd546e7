"""FlexDiffuse's axes in the X/Y/Z plot: registered once, validated, applied per cell."""

from __future__ import annotations

import copy
import types

import pytest
from modules import processing, script_callbacks, scripts

from flexdiffuse.params import PARAM_SPECS
from flexdiffuse.webui.args import REFERENCE_INPUTS
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.xyz import AXIS_PREFIX, reference_axis_label
from tests.webui.conftest import gradient

IMAGE = gradient()


class AxisOption:
    """Mirrors ``scripts/xyz_grid.py``'s AxisOption signature."""

    def __init__(
        self,
        label,
        type,
        apply,
        format_value=None,
        confirm=None,
        cost=0.0,
        choices=None,
        prepare=None,
    ):
        self.label, self.type, self.apply = label, type, apply
        self.format_value, self.confirm, self.cost = format_value, confirm, cost
        self.choices, self.prepare = choices, prepare


@pytest.fixture
def xyz_grid(webui, monkeypatch):
    """A loaded ``xyz_grid.py`` script, found the way A1111 lists scripts."""
    module = types.SimpleNamespace(
        AxisOption=AxisOption, axis_options=[AxisOption("Seed", int, None)]
    )
    script_class = type("Script", (scripts.Script,), {"__module__": "xyz_grid.py"})
    data = scripts.ScriptClassData(script_class, "xyz_grid.py", "/webui/scripts", module)
    monkeypatch.setattr(scripts, "scripts_data", [*scripts.scripts_data, data])
    script_callbacks.before_ui_callback()
    return module


def axis(xyz_grid, label):
    return next(o for o in xyz_grid.axis_options if o.label == AXIS_PREFIX + label)


def test_every_parameter_is_an_axis_once(xyz_grid):
    script_callbacks.before_ui_callback()  # a UI reload runs the callbacks again
    labels = [o.label for o in xyz_grid.axis_options]
    references = [reference_axis_label(slot) for slot in REFERENCE_INPUTS]
    assert labels == ["Seed", *(AXIS_PREFIX + spec.label for spec in PARAM_SPECS), *references]
    assert axis(xyz_grid, "Linear").type is float
    assert axis(xyz_grid, "Mapping priority").choices() == ["Optimal fit", "Text order"]
    assert axis(xyz_grid, "Reuse image tokens").choices() == ["True", "False"]
    assert axis(xyz_grid, "Mapping concepts").type is str


def test_cells_override_the_panel(webui, xyz_grid):
    # The plot runs one job per cell, each from a shallow copy of one processing object.
    cells = {}
    script = webui.scripts[False]
    template = processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * script.args_from + webui.args(image=IMAGE, linear=0.5),
        prompt="a cat",
        steps=1,
    )
    for value in (0.1, 0.9):
        cell = copy.copy(template)
        cell.extra_generation_params = dict(template.extra_generation_params)
        cell.unet_calls = []
        axis(xyz_grid, "Linear").apply(cell, value, [0.1, 0.9])
        axis(xyz_grid, "Mapping priority").apply(cell, "Text order", ["Text order"])
        processed = processing.process_images(cell)
        cells[value] = processed.infotexts[0]
    assert "FlexDiffuse linear: 0.1," in cells[0.1]
    assert "FlexDiffuse linear: 0.9," in cells[0.9]
    assert "FlexDiffuse priority: Text order" in cells[0.9]
    assert not hasattr(template, "flexdiffuse_overrides")  # cells do not leak into each other


@pytest.mark.parametrize(
    ("label", "values", "match"),
    [
        ("Linear", [0.2, 1.5], "must be a number from -1 to 1, got 1.5"),
        ("Mapping priority", ["Best"], "must be one of"),
        ("Reuse image tokens", ["perhaps"], "true or false"),
    ],
)
def test_bad_axis_values_are_refused_before_the_grid_runs(xyz_grid, label, values, match):
    with pytest.raises(FlexDiffuseError, match=match):
        axis(xyz_grid, label).confirm(None, values)


def test_an_axis_with_flexdiffuse_off_says_to_enable_it(webui, xyz_grid):
    script = webui.scripts[False]
    p = processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * script.args_from + webui.args(enabled=False),
        prompt="a cat",
        steps=1,
    )
    axis(xyz_grid, "Linear").apply(p, 0.3, [0.3])
    with pytest.raises(FlexDiffuseError, match="FlexDiffuse is off"):
        processing.process_images(p)


def plot_p(webui, **values):
    script = webui.scripts[False]
    return processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * script.args_from + webui.args(**values),
        prompt="a cat",
        steps=1,
    )


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"enabled": False}, "FlexDiffuse is off"),
        ({"image": None}, "no guidance image"),
        ({"image": IMAGE, "end": 0.5}, r"start \(Guidance start\) must be below end"),
    ],
)
def test_what_would_fail_every_cell_is_refused_before_the_grid(webui, xyz_grid, values, match):
    p = plot_p(webui, **values)
    with pytest.raises(FlexDiffuseError, match=f"X/Y/Z plot: .*{match}"):
        axis(xyz_grid, "Guidance start").confirm(p, [0.0, 0.6])


def test_combinations_of_two_axes_are_checked_together(webui, xyz_grid):
    p = plot_p(webui, image=IMAGE)
    axis(xyz_grid, "Guidance start").confirm(p, [0.1, 0.7])
    with pytest.raises(FlexDiffuseError, match="must be below end"):
        axis(xyz_grid, "Guidance end").confirm(p, [0.5, 1.0])


def test_a_cell_error_reaches_the_comments_the_cells_share(webui, xyz_grid):
    template = plot_p(webui, image=IMAGE)
    template.unet_calls = []
    cell = copy.copy(template)  # the plot's cells share the comments dict
    axis(xyz_grid, "Mapping concepts").apply(cell, " ".join(["x"] * 80), [])
    with pytest.raises(FlexDiffuseError, match="must fit in one"):
        processing.process_images(cell)
    assert any("must fit in one" in comment for comment in template.comments)


def test_a_cell_note_does_not_leak_into_the_next_cell(webui, xyz_grid):
    template = plot_p(webui, image=IMAGE)
    infotexts = []
    for weight in (0.0, 1.0):  # the 0 cell is the unguided baseline, with a note
        cell = copy.copy(template)  # shares extra_generation_params, as the plot's cells do
        cell.unet_calls = []
        axis(xyz_grid, "Image 1 weight").apply(cell, weight, [])
        infotexts.append(processing.process_images(cell).infotexts[0])
    assert "FlexDiffuse: False" in infotexts[0]
    assert "FlexDiffuse note" in infotexts[0]
    assert "FlexDiffuse: True" in infotexts[1]
    assert "FlexDiffuse note" not in infotexts[1]
