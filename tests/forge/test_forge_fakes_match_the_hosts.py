"""The fake Forge hosts mirror the real ones: signatures, and the facts FlexDiffuse relies on.

The real trees come from the host kit beside the checkout (``../shared/hosts``: Forge
``main`` dfdcbab, Forge Classic 1f95d71, reForge ``main`` 3b56b26), unpacked once per
session and parsed with ``ast`` or read as text, never imported. Without the kit the tests
are skipped, except under CI (``CI=true``), where a missing kit fails them. Forge Neo and
ersatzForge are not in the kit: what was read of them is in docs/hosts.md.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from tests.webui.test_fakehost_signatures import (
    fake_parameters,
    real_functions,
    real_parameters,
)

TESTS = Path(__file__).resolve().parents[1]
KIT = TESTS.parents[1] / "shared" / "hosts"
FAKES = {"forge2": TESTS / "fakehost_forge2", "oldforge": TESTS / "fakehost_oldforge"}
TREES = {
    "forge-main-dfdcbab": "forge2",
    "forge-classic-1f95d71": "oldforge",
    "reforge-main-3b56b26": "oldforge",
}
FORGE2 = ("forge-main-dfdcbab",)
OLD = ("forge-classic-1f95d71", "reforge-main-3b56b26")
REFORGE = ("reforge-main-3b56b26",)
CLASSIC = ("forge-classic-1f95d71",)

# (fake file, function or Class.method there) -> (real file, its name there), per tree.
SIGNATURES = [
    (FORGE2, "backend/memory_management.py", "free_memory", None, None),
    (FORGE2, "backend/memory_management.py", "soft_empty_cache", None, None),
    (FORGE2, "backend/memory_management.py", "minimum_inference_memory", None, None),
    (FORGE2, "backend/memory_management.py", "get_torch_device", None, None),
    (OLD, "ldm_patched/modules/model_management.py", "free_memory", None, None),
    (OLD, "ldm_patched/modules/model_management.py", "soft_empty_cache", None, None),
    (OLD, "ldm_patched/modules/model_management.py", "minimum_inference_memory", None, None),
    (OLD, "ldm_patched/modules/model_management.py", "get_torch_device", None, None),
    (FORGE2 + OLD, "modules_forge/main_thread.py", "Task.__init__", None, None),
    (FORGE2 + OLD, "modules_forge/main_thread.py", "Task.work", None, None),
    (FORGE2 + OLD, "modules_forge/main_thread.py", "run_and_wait_result", None, None),
    (FORGE2, "modules/sd_models.py", "forge_model_reload", None, None),
    (FORGE2, "modules/sd_models.py", "FakeInitialModel.__init__", None, None),
    (
        FORGE2 + REFORGE,
        "forge2_overlay.py",
        "DictWithShape.__init__",
        "modules/prompt_parser.py",
        None,
    ),
    (
        FORGE2 + OLD,
        "forge2_overlay.py",
        "DictWithShape.advanced_indexing",
        "modules/prompt_parser.py",
        None,
    ),
    (
        FORGE2,
        "forge2_overlay.py",
        "forward",
        "modules/sd_samplers_cfg_denoiser.py",
        "CFGDenoiser.forward",
    ),
    (
        OLD,
        "oldforge_overlay.py",
        "forward",
        "modules/sd_samplers_cfg_denoiser.py",
        "CFGDenoiser.forward",
    ),
    (FORGE2, "forge2_overlay.py", "wrap_gradio_call_no_job", "modules/call_queue.py", None),
    (REFORGE, "oldforge_overlay.py", "wrap_gradio_call_no_job", "modules/call_queue.py", None),
    (
        CLASSIC,
        "oldforge_overlay.py",
        "wrap_gradio_call_no_job",
        "modules/call_queue.py",
        "wrap_gradio_call",
    ),
    (
        FORGE2,
        "forge2_overlay.py",
        "get_conds_with_caching",
        "modules/processing.py",
        "StableDiffusionProcessing.get_conds_with_caching",
    ),
    (
        FORGE2,
        "forge2_overlay.py",
        "setup_conds",
        "modules/processing.py",
        "StableDiffusionProcessing.setup_conds",
    ),
    (
        OLD,
        "oldforge_overlay.py",
        "setup_conds",
        "modules/processing.py",
        "StableDiffusionProcessing.setup_conds",
    ),
    (
        FORGE2,
        "forge2_overlay.py",
        "calculate_hr_conds",
        "modules/processing.py",
        "StableDiffusionProcessingTxt2Img.calculate_hr_conds",
    ),
]

# What FlexDiffuse and the fakes rely on, as text in the real file (``absent``: must not be).
FACTS = [
    # Every Forge: the hook, and what reaches the UNet after it.
    (FORGE2 + OLD, "modules/sd_samplers_cfg_denoiser.py", "cfg_denoiser_callback(denoiser_params)"),
    (
        FORGE2 + OLD,
        "modules/sd_samplers_cfg_denoiser.py",
        "self.sampler.sampler_extra_args['cond']",
    ),
    (FORGE2 + OLD, "modules/sd_samplers_cfg_denoiser.py", "self.step += 1"),
    (
        FORGE2,
        "backend/sampling/sampling_function.py",
        "compile_conditions(denoiser_params.text_uncond)",
    ),
    (
        FORGE2,
        "backend/sampling/sampling_function.py",
        "denoiser_params.text_cond, cond_composition",
    ),
    (FORGE2, "backend/sampling/condition.py", "feed = cond.advanced_indexing(current_indices)"),
    (OLD, "modules_forge/forge_sampler.py", "feed = cond.advanced_indexing(current_indices)"),
    (
        REFORGE,
        "modules/sd_samplers_cfg_denoiser.py",
        "cond_from_a1111_to_patched_ldm_weighted(denoiser_params.text_cond",
    ),
    (
        CLASSIC,
        "modules/sd_samplers_cfg_denoiser.py",
        "forge_sampler.forge_sample(self, denoiser_params=denoiser_params",
    ),
    (
        FORGE2 + OLD,
        "modules/processing.py",
        "samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc",
    ),
    (FORGE2 + OLD, "modules/api/api.py", "processed = process_images(p)"),
    # Detection by probes: Forge 2 has backend's memory manager and no ldm_patched; old Forge
    # the other way round.
    (FORGE2, "backend/memory_management.py", "def free_memory("),
    (OLD, "ldm_patched/modules/model_management.py", "def free_memory("),
    (FORGE2, "ldm_patched/modules/model_management.py", "absent"),
    (OLD, "backend/memory_management.py", "absent"),
    # Forge 2: CFG 1, CLIP skip, the placeholder model, the engine's tokenizers.
    (FORGE2, "modules/processing.py", "if self.cfg_scale == 1:\n            self.uc = None"),
    (FORGE2, "modules/processing.py", "if self.hr_cfg == 1:\n            self.hr_uc = None"),
    (FORGE2, "modules/processing.py", "hr_cfg: float = 1.0"),
    (
        FORGE2,
        "modules/processing.py",
        "shared.sd_model.set_clip_skip(int(opts.CLIP_stop_at_last_layers))",
    ),
    (
        FORGE2,
        "modules/sd_samplers_cfg_denoiser.py",
        "reconstruct_cond_batch(uncond, self.step) if uncond is not None else None",
    ),
    (FORGE2, "modules/sd_models.py", "self.sd_model = FakeInitialModel()"),
    (
        FORGE2,
        "modules/sd_models.py",
        "    if model_data.forge_hash == current_hash:\n        return model_data.sd_model, False",
    ),
    (FORGE2, "modules/sd_hijack.py", "self.clip", "absent"),
    (
        FORGE2,
        "backend/diffusion_engine/sd15.py",
        "self.text_processing_engine = ClassicTextProcessingEngine(",
    ),
    (
        FORGE2,
        "backend/diffusion_engine/sd20.py",
        "self.text_processing_engine = ClassicTextProcessingEngine(",
    ),
    (
        FORGE2,
        "backend/diffusion_engine/sdxl.py",
        "self.text_processing_engine_l = ClassicTextProcessingEngine(",
    ),
    (FORGE2, "backend/diffusion_engine/sd15.py", "def set_clip_skip(self, clip_skip):"),
    (FORGE2, "backend/diffusion_engine/sdxl.py", "def set_clip_skip(self, clip_skip):"),
    (FORGE2, "backend/text_processing/classic_engine.py", "def tokenize_line(self, line):"),
    (
        FORGE2,
        "backend/text_processing/classic_engine.py",
        "self.id_end = self.tokenizer.eos_token_id",
    ),
    (
        FORGE2,
        "backend/text_processing/classic_engine.py",
        "PromptChunkFix = namedtuple('PromptChunkFix', ['offset', 'embedding'])",
    ),
    (FORGE2, "modules/devices.py", "    memory_management.soft_empty_cache()"),
    (FORGE2, "modules/devices.py", "device: torch.device = memory_management.get_torch_device()"),
    (FORGE2, "backend/diffusion_engine/flux.py", "class Flux(ForgeDiffusionEngine):"),
    (FORGE2, "backend/diffusion_engine/chroma.py", "class Chroma(ForgeDiffusionEngine):"),
    (FORGE2, "backend/diffusion_engine/sd35.py", "class StableDiffusion3(ForgeDiffusionEngine):"),
    (FORGE2, "backend/diffusion_engine/sd35.py", "self.is_sd3 = True"),
    # Forge 2's UI shows the main thread's exception; old Forge's drops it.
    (FORGE2, "modules_forge/main_thread.py", "last_exception = e"),
    (FORGE2, "modules/call_queue.py", "e = main_thread.last_exception"),
    (OLD, "modules_forge/main_thread.py", "last_exception", "absent"),
    (OLD, "modules/call_queue.py", "main_thread", "absent"),
    (FORGE2 + OLD, "modules/call_queue.py", "res = list(func(*args, **kwargs))"),
    (
        FORGE2 + OLD,
        "modules/txt2img.py",
        "return main_thread.run_and_wait_result(txt2img_function, id_task, request, ",
    ),
    (FORGE2 + OLD, "modules/img2img.py", "main_thread.run_and_wait_result("),
    (FORGE2 + OLD, "modules/call_queue.py", "{type(e).__name__}: {e}"),
    # Old Forge: the hijack holds no wrapper; the model's cond_stage_model is Forge's.
    (OLD, "modules/sd_hijack.py", "    clip = None"),
    (OLD, "modules_forge/forge_loader.py", "sd_model.cond_stage_model = conditioner"),
    (OLD, "modules_forge/forge_clip.py", "class CLIP_SD_XL_L(FrozenCLIPEmbedderWithCustomWords):"),
    (OLD, "modules/sd_hijack_clip.py", "def tokenize_line(self, line):"),
    (OLD, "modules/devices.py", "    model_management.soft_empty_cache()"),
    # Old Forge's sampler drops the negative side at CFG scale 1, after the callbacks;
    # reForge's hires pass runs at its Hires CFG scale.
    (OLD, "ldm_patched/modules/samplers.py", "math.isclose(cond_scale, 1.0)"),
    (OLD, "ldm_patched/modules/samplers.py", "uncond_ = None"),
    (REFORGE, "modules/sd_samplers_cfg_denoiser.py", "cond_scale = self.p.hr_cfg"),
    (CLASSIC, "modules/processing.py", "hr_cfg", "absent"),
    # reForge's dynamic clip skip picks the step's prompt sets itself.
    (
        REFORGE,
        "modules/sd_samplers_cfg_denoiser.py",
        'getattr(shared.opts, "dynamic_clip_skip_enabled", False)',
    ),
    (
        REFORGE,
        "modules/sd_samplers_cfg_denoiser.py",
        "schedule_index = min(self.step, len(schedule) - 1)",
    ),
    (REFORGE, "modules/sd_samplers_cfg_denoiser.py", "selected = cond_sets.get(clip_skip)"),
    (REFORGE, "modules/processing.py", "self.dynamic_clip_skip_sets = cond_sets"),
    (CLASSIC, "modules/sd_samplers_cfg_denoiser.py", "dynamic_clip_skip", "absent"),
    # ControlNet's Revision overwrites the conditioning after the callback.
    (
        FORGE2 + REFORGE,
        "extensions-builtin/forge_preprocessor_revision/scripts/preprocessor_revision.py",
        "unet.model_options['revision_conditions'].append(dict(",
    ),
    (
        FORGE2 + REFORGE,
        "extensions-builtin/forge_preprocessor_revision/scripts/preprocessor_revision.py",
        "ignore_prompt=self.ignore_prompt",
    ),
]


def kit_or_skip() -> Path:
    if (KIT / "unpack").is_file():
        return KIT
    if os.environ.get("CI") == "true":
        pytest.fail(f"the host kit is missing at {KIT}: CI checks the fakes against it")
    pytest.skip(f"the host kit (../shared/hosts) is not beside the checkout: {KIT}")


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> dict[str, Path]:
    kit = kit_or_skip()
    root = tmp_path_factory.mktemp("hosts")
    for name in TREES:
        subprocess.run([kit / "unpack", name, root / name], check=True, capture_output=True)
    return {name: root / name for name in TREES}


def fake_module(path: str, tree: str):
    folder = FAKES[TREES[tree]] if not path.startswith("forge2_overlay") else FAKES["forge2"]
    file = folder / path
    if not file.is_file():
        file = FAKES["forge2"] / path
    spec = importlib.util.spec_from_file_location(f"fake_{file.stem}_{abs(hash(file))}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signature_cases():
    for trees, fake_file, name, real_file, real_name in SIGNATURES:
        for tree in trees:
            yield pytest.param(
                tree,
                fake_file,
                name,
                real_file or fake_file,
                real_name or name,
                id=f"{tree}:{name}",
            )


@pytest.mark.parametrize(
    ("tree", "fake_file", "name", "real_file", "real_name"), list(signature_cases())
)
def test_fake_signatures_match_the_real_ones(trees, tree, fake_file, name, real_file, real_name):
    """A real function may take extra trailing parameters with defaults; nothing else."""
    real = real_functions(trees[tree] / real_file).get(real_name)
    assert real is not None, f"{real_name} not found in {tree}/{real_file}"
    target = fake_module(fake_file, tree)
    for part in name.split("."):
        target = getattr(target, part)
    fake = fake_parameters(target)
    expected = real_parameters(real)
    names = [n for n, _ in expected]
    assert names[: len(fake)] == fake, f"{tree} {real_name}: fake {fake}, real {names}"
    assert all(default for _, default in expected[len(fake) :]), f"{real_name} needs more"


def fact_cases():
    for trees, path, *fact in FACTS:
        for tree in trees:
            yield pytest.param(tree, path, *fact, id=f"{tree}:{path}:{fact[0][:30]}")


@pytest.mark.parametrize(("tree", "path", "text"), [c for c in fact_cases() if len(c.values) == 3])
def test_facts_the_host_layer_relies_on(trees, tree, path, text):
    file = trees[tree] / path
    if text == "absent":
        assert not file.exists(), f"{tree} has {path}"
        return
    assert text in file.read_text(encoding="utf-8"), f"{text!r} not in {tree}/{path}"


@pytest.mark.parametrize(
    ("tree", "path", "text", "absent"), [c for c in fact_cases() if len(c.values) == 4]
)
def test_what_the_hosts_lack(trees, tree, path, text, absent):
    assert text not in (trees[tree] / path).read_text(encoding="utf-8"), (
        f"{text!r} in {tree}/{path}"
    )
