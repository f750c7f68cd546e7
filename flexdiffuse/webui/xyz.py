"""FlexDiffuse's axes in A1111's built-in X/Y/Z plot, one per parameter.

An axis value is stored on the cell's processing object; the script reads it in ``process``
and it overrides the panel's value for that cell only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..params import PARAM_SPECS, ParamSpec, check_value
from .errors import FlexDiffuseError

OVERRIDES_ATTRIBUTE = "flexdiffuse_overrides"
"""Name of the attribute of ``p`` that holds the X/Y/Z values of its cell."""

AXIS_PREFIX = "[FlexDiffuse] "


def overrides_of(p: Any) -> dict[str, Any]:
    """The parameter values the X/Y/Z plot set for ``p``'s cell, by field name."""
    return dict(getattr(p, OVERRIDES_ATTRIBUTE, {}))


def set_override(p: Any, name: str, value: Any) -> None:
    """Override parameter ``name`` for ``p``'s cell."""
    # A new dict each time: the plot makes each cell from a shallow copy of one ``p``.
    setattr(p, OVERRIDES_ATTRIBUTE, {**overrides_of(p), name: value})


def axis_options(xyz_grid: Any) -> list[Any]:
    """An ``AxisOption`` of the loaded ``xyz_grid`` module for every parameter."""
    return [_axis_option(xyz_grid.AxisOption, spec) for spec in PARAM_SPECS]


def add_axis_options(xyz_grid: Any) -> None:
    """Append the FlexDiffuse axes to the plot's options, once (the UI can be reloaded)."""
    present = {option.label for option in xyz_grid.axis_options}
    xyz_grid.axis_options.extend(
        option for option in axis_options(xyz_grid) if option.label not in present
    )


def _axis_option(axis_option: Any, spec: ParamSpec) -> Any:
    label = AXIS_PREFIX + spec.label
    apply, confirm = _applier(spec), _confirmer(spec)
    if spec.kind == "float":
        return axis_option(label, float, apply, confirm=confirm)
    if spec.kind == "choice":
        assert spec.choices is not None
        labels = list(spec.choices.values())
        return axis_option(label, str, apply, confirm=confirm, choices=lambda: labels)
    if spec.kind == "bool":
        return axis_option(label, str, apply, confirm=confirm, choices=lambda: ["True", "False"])
    return axis_option(label, str, apply, confirm=confirm)


def _applier(spec: ParamSpec) -> Callable[[Any, Any, Any], None]:
    def apply(p: Any, value: Any, values: Any) -> None:
        set_override(p, spec.name, value)

    return apply


def _confirmer(spec: ParamSpec) -> Callable[[Any, Any], None]:
    def confirm(p: Any, values: Any) -> None:
        for value in values:
            try:
                check_value(spec.name, value)
            except ValueError as error:
                raise FlexDiffuseError(f"X/Y/Z plot: {error}") from None

    return confirm
