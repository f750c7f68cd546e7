"""Fake V3 schema: inputs and outputs keep what they were given; ``as_dict`` as /object_info."""

from dataclasses import dataclass, field
from typing import Any

import torch


class Input:
    io_type = "*"

    def __init__(
        self,
        id,
        display_name=None,
        optional=False,
        tooltip=None,
        lazy=None,
        extra_dict=None,
        raw_link=None,
        advanced=None,
    ):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.advanced = advanced
        self.default = None
        self.options = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            k: v
            for k, v in vars(self).items()
            if v is not None and k not in ("id", "optional", "lazy", "io_type")
        }
        return out


class Output:
    def __init__(self, id=None, display_name=None, tooltip=None, is_output_list=False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list


def _type(io_type: str, python_type=None):
    class ComfyType:
        class Input(Input):
            pass

        class Output(Output):
            pass

    ComfyType.io_type = ComfyType.Input.io_type = ComfyType.Output.io_type = io_type
    ComfyType.__name__ = io_type.title()
    if python_type is not None:  # the real Clip and ClipVision set Type only for type checkers
        ComfyType.Type = python_type
    return ComfyType


Image = _type("IMAGE", torch.Tensor)
Mask = _type("MASK", torch.Tensor)
Conditioning = _type("CONDITIONING", list)
ClipVision = _type("CLIP_VISION")
Clip = _type("CLIP")


def Custom(io_type):
    return _type(io_type)


class MultiType:
    """One socket that takes any of ``types`` (the page shows their io types joined by ',')."""

    class Input(Input):
        def __init__(
            self,
            id,
            types,
            display_name=None,
            optional=False,
            tooltip=None,
            lazy=None,
            extra_dict=None,
            raw_link=None,
            advanced=None,
        ):
            super().__init__(id, display_name, optional, tooltip, lazy, advanced=advanced)
            self.types = types
            self.io_type = ",".join(t.io_type for t in types)


class Float:
    Type = float

    class Input(Input):
        io_type = "FLOAT"

        def __init__(
            self,
            id,
            display_name=None,
            optional=False,
            tooltip=None,
            lazy=None,
            default=None,
            min=None,
            max=None,
            step=None,
            round=None,
            display_mode=None,
            gradient_stops=None,
            socketless=None,
            force_input=None,
            extra_dict=None,
            raw_link=None,
            advanced=None,
        ):
            super().__init__(id, display_name, optional, tooltip, lazy, advanced=advanced)
            self.default, self.min, self.max, self.step, self.round = default, min, max, step, round


class Boolean:
    Type = bool

    class Input(Input):
        io_type = "BOOLEAN"

        def __init__(
            self,
            id,
            display_name=None,
            optional=False,
            tooltip=None,
            lazy=None,
            default=None,
            label_on=None,
            label_off=None,
            socketless=None,
            force_input=None,
            extra_dict=None,
            raw_link=None,
            advanced=None,
        ):
            super().__init__(id, display_name, optional, tooltip, lazy, advanced=advanced)
            self.default = default


class Combo:
    Type = str

    class Input(Input):
        io_type = "COMBO"

        def __init__(
            self,
            id,
            options=None,
            display_name=None,
            optional=False,
            tooltip=None,
            lazy=None,
            default=None,
            control_after_generate=None,
            upload=None,
            image_folder=None,
            remote=None,
            socketless=None,
            extra_dict=None,
            raw_link=None,
            advanced=None,
        ):
            super().__init__(id, display_name, optional, tooltip, lazy, advanced=advanced)
            self.options, self.default = options, default


class String:
    Type = str

    class Input(Input):
        io_type = "STRING"

        def __init__(
            self,
            id,
            display_name=None,
            optional=False,
            tooltip=None,
            lazy=None,
            multiline=False,
            placeholder=None,
            default=None,
            dynamic_prompts=None,
            socketless=None,
            force_input=None,
            extra_dict=None,
            raw_link=None,
            advanced=None,
        ):
            super().__init__(id, display_name, optional, tooltip, lazy, advanced=advanced)
            self.multiline, self.placeholder, self.default = multiline, placeholder, default

    Output = _type("STRING").Output


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False


class NodeOutput:
    def __init__(self, *args, ui=None, expand=None, block_execution=None):
        self.args = args
        self.ui = ui


class ComfyNode:
    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError
