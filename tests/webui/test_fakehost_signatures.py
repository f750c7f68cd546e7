"""The fake host mirrors the real A1111: signatures and the facts the glue relies on.

The real files are parsed with ``ast``, never imported. A real function may take extra
trailing parameters with defaults (1.10 adds ``name=None`` to the callback registrations);
everything else must match.

Which A1111 trees: those named by ``FLEXDIFFUSE_A1111_SRC`` (one or more source trees joined
with ``os.pathsep``, e.g. a v1.10 checkout) when it is set; otherwise the trees of
:data:`CHECKED_TREES`, unpacked from the host kit in ``../shared/hosts`` into ``build/hosts/``
(gitignored; ``unpack`` is idempotent and takes milliseconds once done). Without the kit the
checks are skipped, except under ``CI=true``, where they fail: CI must check the real source.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from tests.signatures import fake_function, fake_parameters, real_parameters
from tests.webui import test_xyz

ROOT = Path(__file__).resolve().parents[2]
HOST_KIT = ROOT.parent / "shared" / "hosts"
UNPACKED = ROOT / "build" / "hosts"

HOST_TREES: dict[str, str] = {
    "a1111-c8a5322d": "a1111-c8a5322d",
    "forge-main": "forge-main-dfdcbab",
    "forge-classic": "forge-classic-1f95d71",
    "reforge": "reforge-main-3b56b26",
}
"""Host source trees by name -> their tarball in the host kit (``unpack --list``)."""

CHECKED_TREES: tuple[str, ...] = ("a1111-c8a5322d",)
"""The trees the fake host mirrors, so the checks below run against them. The Forge family
replaces the sampling code the fakes mirror; add its trees here with checks of their own."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def host_tree(name: str) -> Path:
    """The source tree ``name`` of :data:`HOST_TREES`, unpacked from the kit (once)."""
    dest = UNPACKED / name
    unpack = HOST_KIT / "unpack"
    done = subprocess.run(
        [str(unpack), HOST_TREES[name], str(dest)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{unpack} {HOST_TREES[name]} {dest} failed:\n{done.stderr}", pytrace=False)
    return dest


def sources() -> list[tuple[str, Path | None]]:
    """(id, tree) to check: the override, the kit's trees, or one missing-kit marker."""
    override = [Path(p) for p in os.environ.get("FLEXDIFFUSE_A1111_SRC", "").split(os.pathsep)]
    override = [p for p in override if str(p) not in ("", ".")]
    if override:
        return [(str(p), p) for p in override]
    if (HOST_KIT / "unpack").is_file():
        return [(name, None) for name in CHECKED_TREES]
    return [("no-host-kit", None)]


SOURCES = sources()


@pytest.fixture(scope="module", params=SOURCES, ids=[name for name, _ in SOURCES])
def source(request) -> Path:
    name, path = request.param
    if path is not None:
        return path
    if name in HOST_TREES:
        return host_tree(name)
    message = (
        f"no A1111 source to check the fakes against: no host kit at {HOST_KIT} (the "
        "project's shared folder, beside the checkout) and FLEXDIFFUSE_A1111_SRC is not set"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# fake module -> (real file, functions and methods mirrored there)
MIRRORED = {
    "modules.script_callbacks": (
        "modules/script_callbacks.py",
        [
            "CFGDenoiserParams.__init__",
            "cfg_denoiser_callback",
            "infotext_pasted_callback",
            "on_cfg_denoiser",
            "on_ui_settings",
            "on_before_ui",
            "on_infotext_pasted",
            "on_script_unloaded",
            "on_app_started",
            "app_started_callback",
        ],
    ),
    "modules.scripts": (
        "modules/scripts.py",
        [
            "Script.title",
            "Script.ui",
            "Script.show",
            "Script.run",
            "Script.setup",
            "Script.before_process",
            "Script.process",
            "Script.process_batch",
            "Script.postprocess_batch",
            "Script.postprocess",
            "Script.before_hr",
            "Script.elem_id",
        ],
    ),
    "modules.ui_components": (
        "modules/ui_components.py",
        ["InputAccordion.__init__", "ToolButton.__init__"],
    ),
    "modules.ui_common": ("modules/ui_common.py", ["create_refresh_button"]),
    "modules.prompt_parser": (
        "modules/prompt_parser.py",
        [
            "SdConditioning.__init__",
            "ComposableScheduledPromptConditioning.__init__",
            "MulticondLearnedConditioning.__init__",
            "DictWithShape.__init__",
            "get_learned_conditioning",
            "get_learned_conditioning_prompt_schedules",
            "get_multicond_prompt_list",
            "get_multicond_learned_conditioning",
            "reconstruct_cond_batch",
            "reconstruct_multicond_batch",
            "stack_conds",
        ],
    ),
    "modules.sd_samplers_cfg_denoiser": (
        "modules/sd_samplers_cfg_denoiser.py",
        [
            "CFGDenoiser.__init__",
            "CFGDenoiser.forward",
            "CFGDenoiser.update_inner_model",
            "CFGDenoiser.pad_cond_uncond",
        ],
    ),
    "modules.processing": (
        "modules/processing.py",
        [
            "StableDiffusionProcessing.comment",
            "StableDiffusionProcessing.setup_conds",
            "StableDiffusionProcessing.get_conds",
            "StableDiffusionProcessing.get_conds_with_caching",
            "StableDiffusionProcessing.sample",
            "StableDiffusionProcessingTxt2Img.sample",
            "StableDiffusionProcessingTxt2Img.calculate_hr_conds",
            "StableDiffusionProcessingImg2Img.sample",
        ],
    ),
    "modules.devices": ("modules/devices.py", ["autocast", "torch_gc"]),
    "modules.extra_networks": ("modules/extra_networks.py", ["parse_prompt"]),
    "modules.errors": ("modules/errors.py", ["report"]),
    "modules.infotext_utils": (
        "modules/infotext_utils.py",
        ["quote", "unquote", "parse_generation_parameters"],
    ),
}
# Fakes whose real class lives in another module than the fake's.
MOVED = {
    ("modules.shared", "OptionInfo.__init__"): "modules/options.py",
    ("modules.shared", "OptionInfo.info"): "modules/options.py",
    ("modules.shared", "Options.add_option"): "modules/options.py",
    ("modules.shared", "State.interrupt"): "modules/shared_state.py",
    ("modules.shared", "State.begin"): "modules/shared_state.py",
    ("modules.shared", "State.skip"): "modules/shared_state.py",
    ("modules.shared", "State.end"): "modules/shared_state.py",
}
# What the glue reads from A1111 objects and modules beyond signatures: (file, text in it).
FACTS = [
    ("modules/sd_samplers_cfg_denoiser.py", "self.sampler.sampler_extra_args['cond']"),
    ("modules/sd_samplers_cfg_denoiser.py", "self.p = None"),
    ("modules/sd_samplers_cfg_denoiser.py", "CFGDenoiserParams(x_in, image_cond_in, sigma_in"),
    ("modules/sd_samplers_cfg_denoiser.py", "tensor = denoiser_params.text_cond"),
    ("modules/sd_samplers_cfg_denoiser.py", "self.step += 1"),
    ("modules/processing.py", "is_hr_pass"),
    ("modules/processing.py", "self.hr_prompts = "),
    (
        "modules/processing.py",
        "samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc",
    ),
    ("modules/processing.py", "p.scripts.process(p)"),
    ("modules/processing.py", "self.extra_generation_params"),
    ("modules/prompt_parser.py", "ScheduledPromptConditioning = namedtuple("),
    ("modules/scripts.py", '["script_class", "path", "basedir", "module"]'),
    ("modules/scripts.py", "AlwaysVisible = object()"),
    ("modules/scripts.py", "script.process(p, *script_args)"),
    ("modules/shared_state.py", "self.interrupted = True"),
    ("modules/paths.py", "from modules.paths_internal import models_path"),
    ("modules/paths.py", "data_path, extensions_dir, extensions_builtin_dir"),
    ("modules/shared_state.py", "textinfo = None"),
    ("modules/shared_state.py", "self.skipped = True"),
    ("modules/shared_state.py", 'self.job = ""'),
    ("modules/call_queue.py", "shared.state.end()"),
    ("modules/progress.py", "textinfo=shared.state.textinfo"),
    ("modules/ui_settings.py", "ui_common.create_refresh_button(res, info.refresh"),
    ("modules/ui_settings.py", "info.component_args() if callable(info.component_args)"),
    ("modules/sd_models.py", "model.is_sdxl"),
    ("modules/devices.py", 'cpu: torch.device = torch.device("cpu")'),
    ("modules/sd_hijack.py", "self.clip = m.cond_stage_model"),
    ("modules/sd_hijack_clip.py", "def tokenize_line(self, line):"),
    ("modules/sd_hijack_clip.py", "PromptChunkFix(len(chunk.tokens), embedding)"),
    ("modules/sd_hijack_clip.py", "self.tokenizer = wrapped.tokenizer"),
    ("modules/sd_hijack_open_clip.py", "tokenizer = open_clip.tokenizer._tokenizer"),
    ("modules/call_queue.py", "queue_lock = "),
    ("modules/scripts.py", "callback(OnComponent(component=component))"),
    ("scripts/xyz_grid.py", "axis_options = ["),
    ("scripts/xyz_grid.py", "opt.confirm(p, valslist)"),
]


def real_functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = item
    return found


def mirrored():
    for module, (path, names) in MIRRORED.items():
        for name in names:
            yield module, name, path
    for (module, name), path in MOVED.items():
        yield module, name, path
    yield "tests.webui.test_xyz", "AxisOption.__init__", "scripts/xyz_grid.py"


@pytest.mark.parametrize(("module", "name", "path"), list(mirrored()), ids=lambda x: str(x))
def test_fake_signatures_match_the_real_ones(source, module, name, path):
    real = real_functions(source / path).get(name)
    assert real is not None, f"{name} not found in {source / path}"
    expected = real_parameters(real)
    fake = fake_parameters(fake_function(module, name))
    names = [n for n, _ in expected]
    assert names[: len(fake)] == fake, f"{module}.{name}: fake {fake}, real {names}"
    extra = expected[len(fake) :]
    assert all(has_default for _, has_default in extra), f"real {name} needs {extra}"


@pytest.mark.parametrize(("path", "text"), FACTS, ids=lambda x: str(x)[:40])
def test_facts_the_glue_relies_on(source, path, text):
    assert text in (source / path).read_text(encoding="utf-8"), f"{text!r} not in {path}"


def test_the_xyz_fake_module_is_used():
    assert test_xyz.AxisOption.__init__ is not None
