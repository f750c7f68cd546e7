"""Fake V3 schema: inputs and outputs keep what they were given; ``as_dict`` as /object_info."""

from dataclasses import dataclass, field
from typing import Any


class Input:
    io_type = "*"

    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
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


def _type(io_type: str):
    class Type:
        class Input(Input):
            pass

        class Output(Output):
            pass

    Type.io_type = Type.Input.io_type = Type.Output.io_type = io_type
    Type.__name__ = io_type.title()
    return Type


Image = _type("IMAGE")
Conditioning = _type("CONDITIONING")
ClipVision = _type("CLIP_VISION")
Clip = _type("CLIP")


class Float:
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
        ):
            super().__init__(id, display_name, optional, tooltip, lazy)
            self.default, self.min, self.max, self.step, self.round = default, min, max, step, round


class Boolean:
    class Input(Input):
        io_type = "BOOLEAN"

        def __init__(
            self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None
        ):
            super().__init__(id, display_name, optional, tooltip, lazy)
            self.default = default


class Combo:
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
        ):
            super().__init__(id, display_name, optional, tooltip, lazy)
            self.options, self.default = options, default


class String:
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
        ):
            super().__init__(id, display_name, optional, tooltip, lazy)
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
