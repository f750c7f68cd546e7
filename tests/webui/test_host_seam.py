"""The host seam holds: the job code reads nothing of the webui's objects, and ``Host`` is
the sum of its concerns, each implemented by every host (docs/development.md)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from flexdiffuse.webui.hosts import base
from flexdiffuse.webui.hosts.a1111 import A1111Host
from flexdiffuse.webui.hosts.forge2 import Forge2Host
from flexdiffuse.webui.hosts.oldforge import OldForgeHost

ROOT = Path(__file__).resolve().parents[2]
WEBUI = ROOT / "flexdiffuse" / "webui"
CONCERNS = (
    base.HostSettings,
    base.HostUI,
    base.TextEncoding,
    base.Devices,
    base.Progress,
    base.SamplingHooks,
)
HOST_OBJECT_ATTRIBUTES = {
    # A1111's processing object
    "c",
    "uc",
    "hr_prompts",
    "is_hr_pass",
    "all_prompts",
    "extra_generation_params",
    "sample",
    # CFGDenoiserParams and its denoiser
    "denoiser",
    "text_cond",
    "text_uncond",
    "sampler_extra_args",
    "sampling_step",
    # MulticondLearnedConditioning and ScheduledPromptConditioning
    "schedules",
    "end_at_step",
}
"""Attributes of the webui's own objects that only the host adapters may read."""

JOB_CODE = ("job.py", "conds.py", "prepare.py", "xyz.py")


def test_the_plot_axes_keep_their_values_on_the_job_surface_only():
    tree = ast.parse((WEBUI / "xyz.py").read_text(encoding="utf-8"))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"getattr", "setattr", "vars"}, "xyz.py reads or writes p itself"


def members(protocol: type) -> set[str]:
    own = {name for name in vars(protocol) if not name.startswith("_")}
    return own | set(typing.get_type_hints(protocol)) - {"T"}


@pytest.mark.parametrize("name", JOB_CODE)
def test_the_job_code_reads_no_host_object(name):
    tree = ast.parse((WEBUI / name).read_text(encoding="utf-8"))
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not read & HOST_OBJECT_ATTRIBUTES, f"{name} reads {read & HOST_OBJECT_ATTRIBUTES}"


def test_every_host_member_belongs_to_one_concern():
    assert set(CONCERNS) <= set(base.Host.__mro__)
    concerns = [members(protocol) for protocol in CONCERNS]
    every = set().union(*concerns)
    assert sum(len(c) for c in concerns) == len(every), "a member in two concerns"
    assert members(base.Host) - every == {"name", "unsupported"}


@pytest.mark.parametrize("host", [A1111Host, Forge2Host, OldForgeHost], ids=lambda h: h.__name__)
def test_every_host_implements_every_concern(host):
    instance = host()
    for protocol in CONCERNS:
        missing = {name for name in members(protocol) if not hasattr(instance, name)}
        assert not missing, f"{host.__name__} lacks {protocol.__name__}'s {missing}"


def test_the_seam_doc_names_every_concern_and_member():
    doc = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    for protocol in CONCERNS:
        assert f"`{protocol.__name__}`" in doc
        for name in members(protocol):
            assert f"`{name}`" in doc, f"docs/development.md does not name {name}"
