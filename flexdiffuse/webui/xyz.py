"""FlexDiffuse's axes in the webui's built-in X/Y/Z plot, one per parameter.

An axis value is stored on the cell's job surface (``JobSurface.set_plot_value``: A1111 keeps it
on the cell's processing object); the script reads it in ``process``
and it overrides the panel's value for that cell only. Before the grid starts, each axis
checks its values, and everything that would fail every cell (FlexDiffuse off, no image, a
step window a combination of values empties) is refused with the message on screen: the plot
turns a cell's error into a black cell and a console line.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..params import PARAM_SPECS, ParamSpec, check_value
from .args import REFERENCE_INPUTS, ScriptArgs, describe_input, make_params, read_reference_name
from .errors import NO_GUIDANCE_IMAGE, PLOTTED_BUT_OFF, FlexDiffuseError
from .hosts import JobSurface

AXIS_PREFIX = "[FlexDiffuse] "

PARAMS = {spec.name for spec in PARAM_SPECS}

PanelArgs = Callable[[Any], ScriptArgs]
"""Reads the FlexDiffuse panel's arguments of a processing object (raises when unreadable)."""

SurfaceOf = Callable[[Any], JobSurface]
"""The host's job surface of a processing object (``Host.surface``): the plot's values live
there, so this module reads and writes nothing of the webui's objects."""


@dataclass(frozen=True)
class SavedReferences:
    """The saved references an axis offers: ``names`` lists them (the axis's choices), and
    ``check`` raises :class:`FlexDiffuseError` for a name no job could use."""

    names: Callable[[], list[str]]
    check: Callable[[str], object]


def axis_options(
    xyz_grid: Any,
    panel_args: PanelArgs,
    surface_of: SurfaceOf,
    references: SavedReferences | None = None,
) -> list[Any]:
    """An ``AxisOption`` of the loaded ``xyz_grid`` module for every parameter, and one per
    guidance image slot over saved ``references``."""
    options = [
        _axis_option(xyz_grid.AxisOption, spec, panel_args, surface_of) for spec in PARAM_SPECS
    ]
    if references is not None:
        options += [
            _reference_axis(xyz_grid.AxisOption, slot, references, panel_args, surface_of)
            for slot in REFERENCE_INPUTS
        ]
    return options


def add_axis_options(
    xyz_grid: Any,
    panel_args: PanelArgs,
    surface_of: SurfaceOf,
    references: SavedReferences | None = None,
) -> None:
    """Append the FlexDiffuse axes to the plot's options, once (the UI can be reloaded)."""
    present = {option.label for option in xyz_grid.axis_options}
    xyz_grid.axis_options.extend(
        option
        for option in axis_options(xyz_grid, panel_args, surface_of, references)
        if option.label not in present
    )


def reference_axis_label(slot: str) -> str:
    """The label of the axis over saved references for guidance image ``slot``."""
    return f"{AXIS_PREFIX}{describe_input(slot).capitalize()}: saved reference"


def _reference_axis(
    axis_option: Any,
    slot: str,
    references: SavedReferences,
    panel_args: PanelArgs,
    surface_of: SurfaceOf,
) -> Any:
    name = REFERENCE_INPUTS[slot]

    def apply(p: Any, value: Any, values: Any) -> None:
        surface_of(p).set_plot_value(name, value)

    def confirm(p: Any, values: Any) -> None:
        for value in values:
            reference = read_reference_name(value, slot)
            if reference is not None:
                references.check(reference)
        surface = surface_of(p)
        axes = {**surface.plot_axes(), name: list(values)}
        surface.set_plot_axes(axes)
        preflight(panel_args(p), axes)

    return axis_option(
        reference_axis_label(slot), str, apply, confirm=confirm, choices=references.names
    )


def _axis_option(
    axis_option: Any, spec: ParamSpec, panel_args: PanelArgs, surface_of: SurfaceOf
) -> Any:
    label = AXIS_PREFIX + spec.label
    apply, confirm = _applier(spec, surface_of), _confirmer(spec, panel_args, surface_of)
    if spec.kind == "float":
        return axis_option(label, float, apply, confirm=confirm)
    if spec.kind == "choice":
        assert spec.choices is not None
        labels = list(spec.choices.values())
        return axis_option(label, str, apply, confirm=confirm, choices=lambda: labels)
    if spec.kind == "bool":
        return axis_option(label, str, apply, confirm=confirm, choices=lambda: ["True", "False"])
    return axis_option(label, str, apply, confirm=confirm)


def _applier(spec: ParamSpec, surface_of: SurfaceOf) -> Callable[[Any, Any, Any], None]:
    def apply(p: Any, value: Any, values: Any) -> None:
        surface_of(p).set_plot_value(spec.name, value)

    return apply


def _confirmer(
    spec: ParamSpec, panel_args: PanelArgs, surface_of: SurfaceOf
) -> Callable[[Any, Any], None]:
    def confirm(p: Any, values: Any) -> None:
        for value in values:
            try:
                check_value(spec.name, value)
            except ValueError as error:
                raise FlexDiffuseError(f"X/Y/Z plot: {error}") from None
        surface = surface_of(p)
        axes = {**surface.plot_axes(), spec.name: list(values)}
        surface.set_plot_axes(axes)
        preflight(panel_args(p), axes)

    return confirm


def preflight(args: ScriptArgs, axes: dict[str, list[Any]]) -> None:
    """Refuse a plot whose FlexDiffuse axes cannot guide: FlexDiffuse off, no image, or a
    combination of axis values the panel's other values reject (a step window with no step).

    Raises:
        FlexDiffuseError: saying what to change before the grid starts.
    """
    if not args.enabled:
        raise FlexDiffuseError(PLOTTED_BUT_OFF)
    plotted = {name: values for name, values in axes.items() if name in PARAMS}
    if not args.images and not args.references and not _every_cell_has_a_reference(axes):
        raise FlexDiffuseError(f"X/Y/Z plot: {NO_GUIDANCE_IMAGE}")
    names = list(plotted)
    for combination in itertools.product(*plotted.values()):
        try:
            make_params(dict(zip(names, combination, strict=True)), base=args.params)
        except FlexDiffuseError as error:
            raise FlexDiffuseError(f"X/Y/Z plot: {error}") from None


def _every_cell_has_a_reference(axes: dict[str, list[Any]]) -> bool:
    """Whether each cell of the plot's reference axes names a reference (a panel without an
    image or a reference then guides every cell)."""
    slots = [(slot, axes[name]) for slot, name in REFERENCE_INPUTS.items() if name in axes]
    if not slots:
        return False
    return all(
        any(
            read_reference_name(value, slot) is not None
            for (slot, _), value in zip(slots, cell, strict=True)
        )
        for cell in itertools.product(*(values for _, values in slots))
    )
