"""Reading parameter lists, to check a host's fakes against its real source."""

from __future__ import annotations

import ast
import importlib
import inspect


def real_parameters(node: ast.FunctionDef) -> list[tuple[str, bool]]:
    """(name, has a default) in order; ``*args``/``**kwargs`` as ``*name``/``**name``."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    params = [(a.arg, d) for a, d in zip(positional, defaults, strict=True)]
    if args.vararg:
        params.append((f"*{args.vararg.arg}", True))
    params += [
        (a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg:
        params.append((f"**{args.kwarg.arg}", True))
    return params


def fake_parameters(function) -> list[str]:
    names = []
    for parameter in inspect.signature(function).parameters.values():
        prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
        names.append(prefix.get(parameter.kind, "") + parameter.name)
    return names


def fake_function(module_name: str, qualified: str):
    target = importlib.import_module(module_name)
    for part in qualified.split("."):
        target = getattr(target, part)
    return target
