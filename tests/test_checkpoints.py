"""CLIP vision towers from single weights files, in transformers' and OpenCLIP's layouts.

Each test saves a tiny random tower to disk in some layout, loads it back through
``ImageEncoder.from_pretrained`` (the path users hit) and checks that its image tokens equal
those of the same tower loaded from a ``save_pretrained`` folder.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from flexdiffuse import ImageEncoder, ModelLoadError
from flexdiffuse.checkpoints import convert_command, weights_only_is_safe
from flexdiffuse.known_towers import VIT_BIGG, VIT_H, VIT_L
from flexdiffuse.towers import find_tower_files
from tests.pickles import bypass_weights_only, opened_files, pickles_in, plant
from tests.test_encoder import gradient

IMAGE = gradient(50, 40)


def tiny_tower(projection_dim: int = 48):
    """A tiny tower whose heads and activation follow the inference rule for unknown widths."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(3)
    config = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=96,
        num_attention_heads=2,  # 64-wide heads
        num_hidden_layers=2,
        hidden_act="gelu",
        image_size=32,
        patch_size=8,
        projection_dim=projection_dim,
    )
    return CLIPVisionModelWithProjection(config).eval()


def to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tower under OpenCLIP's names (``visual.*``, fused q/k/v, ``proj`` transposed)."""
    out = {}
    top = {
        "embeddings.class_embedding": "class_embedding",
        "embeddings.patch_embedding.weight": "conv1.weight",
        "embeddings.position_embedding.weight": "positional_embedding",
        "pre_layrnorm.weight": "ln_pre.weight",
        "pre_layrnorm.bias": "ln_pre.bias",
        "post_layernorm.weight": "ln_post.weight",
        "post_layernorm.bias": "ln_post.bias",
    }
    block = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "self_attn.out_proj": "attn.out_proj",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
    }
    for key, tensor in state.items():
        name = key.removeprefix("vision_model.")
        if name in top:
            out[f"visual.{top[name]}"] = tensor
        elif key == "visual_projection.weight":
            out["visual.proj"] = tensor.t().contiguous()
        elif name.startswith("encoder.layers."):
            index, rest = name.removeprefix("encoder.layers.").split(".", 1)
            module, kind = rest.rsplit(".", 1)
            prefix = f"visual.transformer.resblocks.{index}."
            if module.startswith("self_attn.") and module.endswith(("q_proj", "k_proj", "v_proj")):
                continue
            out[f"{prefix}{block[module]}.{kind}"] = tensor
    for index in {k.split(".")[3] for k in state if ".layers." in k}:
        for kind in ("weight", "bias"):
            parts = [
                state[f"vision_model.encoder.layers.{index}.self_attn.{p}_proj.{kind}"]
                for p in "qkv"
            ]
            out[f"visual.transformer.resblocks.{index}.attn.in_proj_{kind}"] = torch.cat(parts)
    out["text_projection"] = torch.zeros(4, 4)  # a whole OpenCLIP model has a text tower
    out["transformer.resblocks.0.ln_1.weight"] = torch.zeros(4)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[torch.nn.Module, torch.Tensor]:
    """The tiny tower and its tokens for IMAGE, loaded from a save_pretrained folder."""
    from transformers import CLIPImageProcessor

    model = tiny_tower()
    folder = tmp_path_factory.mktemp("reference")
    model.save_pretrained(folder, safe_serialization=True)
    size = {"shortest_edge": 32}
    CLIPImageProcessor(size=size, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return model, ImageEncoder.from_pretrained(folder)(IMAGE)


def state_of(model) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}


@pytest.mark.parametrize(
    "layout", ["transformers", "prefixed", "whole-clip", "open-clip"], ids=lambda x: x
)
def test_safetensors_file_in_every_layout(tmp_path, reference, layout):
    model, expected = reference
    state = state_of(model)
    if layout == "prefixed":
        state = {f"clip.{k}": v for k, v in state.items()}
    elif layout == "whole-clip":
        state = {**state, "text_model.embeddings.token_embedding.weight": torch.zeros(10, 8)}
        state["text_projection.weight"] = torch.zeros(8, 8)
        state["logit_scale"] = torch.tensor(1.0)
    elif layout == "open-clip":
        state = to_open_clip(state)
    path = tmp_path / "clip_vision.safetensors"
    save_file(state, str(path))
    encoder = ImageEncoder.from_pretrained(path)
    torch.testing.assert_close(encoder(IMAGE), expected)
    assert encoder.width == 48


def test_a_named_pickle_loads_with_weights_only_on_a_torch_without_a_published_bypass(
    tmp_path, reference, monkeypatch
):
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    assert weights_only_is_safe()
    model, expected = reference
    path = tmp_path / "clip_h.pth"
    torch.save({"state_dict": to_open_clip(state_of(model))}, path)
    torch.testing.assert_close(ImageEncoder.from_pretrained(path)(IMAGE), expected)


def test_a_named_pickle_that_would_run_code_is_refused_by_weights_only(tmp_path, reference):
    """On this torch (no published bypass), the pickle is read with weights_only, which
    refuses the payload's global: a real torch.save archive, not refused as malformed."""
    assert weights_only_is_safe()
    marker = tmp_path / "code-ran"
    path = plant(tmp_path / "evil.pth", marker, state_of(reference[0]))
    assert zipfile.is_zipfile(path)
    with pytest.raises(ModelLoadError, match=r"evil\.pth") as caught:
        ImageEncoder.from_pretrained(path)
    assert isinstance(caught.value.__cause__.__cause__, pickle.UnpicklingError)
    message = str(caught.value)
    # The payload, by its global; not torch's advice to load it with weights_only=False.
    assert "'evil.pth' holds more than tensors (getattr), which torch's weights_only" in message
    assert "weights_only=False" not in message
    assert "\x1b" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("version", "bypasses"),
    [
        ("2.1.2", "CVE-2025-32434, CVE-2026-24747"),
        ("2.3.1+cu121", "CVE-2025-32434, CVE-2026-24747"),
        ("2.5.1", "CVE-2025-32434, CVE-2026-24747"),
        ("2.9.1", "CVE-2026-24747"),
        ("2.10.0a0+git", "CVE-2026-24747"),
    ],
)
def test_a_named_pickle_is_not_opened_on_a_torch_with_a_published_bypass(
    tmp_path, reference, monkeypatch, version, bypasses
):
    """torch 2.1.2 is A1111 1.10's, 2.3.1 Forge's; a pre-release of 2.10 counts as 2.9."""
    marker = tmp_path / "code-ran"
    path = plant(tmp_path / "clip_h.pth", marker, state_of(reference[0]))
    monkeypatch.setattr(torch, "__version__", version)
    reads = bypass_weights_only(monkeypatch)
    with opened_files() as opened, pytest.raises(ModelLoadError) as caught:
        ImageEncoder.from_pretrained(path)
    assert not marker.exists()
    assert reads == []
    assert pickles_in(opened) == []
    message = str(caught.value)
    assert f"'{path}' is a pickle" in message
    assert f"({version}) can run code hidden in the file even with weights_only ({bypasses};" in (
        message
    )
    assert message.endswith(convert_command(path))


def test_the_convert_command_writes_a_safetensors_file_the_scan_finds(tmp_path, reference):
    model, expected = reference
    folder = tmp_path / "clip vision"  # a space, as Windows folders have
    folder.mkdir()
    torch.save({"state_dict": to_open_clip(state_of(model))}, folder / "clip_h.pth")
    command = convert_command(folder / "clip_h.pth")
    assert command.startswith(f"{sys.executable} -c ")
    subprocess.run(command, shell=True, check=True, capture_output=True)
    assert find_tower_files([folder], 48) == [folder / "clip_h.safetensors"]
    encoder = ImageEncoder.from_pretrained(folder / "clip_h.safetensors")
    torch.testing.assert_close(encoder(IMAGE), expected)


def test_the_documented_convert_command_is_the_one_flexdiffuse_gives():
    code = convert_command(Path("clip_h.pth")).split(" -c ", 1)[1].rsplit(" ", 2)[0]
    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    assert f"python -c {code} models/clip_vision/clip_h.pth" in usage


def test_a_file_without_a_vision_tower(tmp_path):
    path = tmp_path / "unet.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ModelLoadError, match="no CLIP vision tower in this file"):
        ImageEncoder.from_pretrained(path)


def test_a_tower_without_projection(tmp_path, reference):
    state = {k: v for k, v in state_of(reference[0]).items() if "visual_projection" not in k}
    path = tmp_path / "no_projection.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match="no visual projection"):
        ImageEncoder.from_pretrained(path)


def test_tensors_that_do_not_fit(tmp_path, reference):
    state = state_of(reference[0])
    state["vision_model.encoder.layers.1.mlp.fc1.weight"] = torch.zeros(7, 7)
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match=r"broken\.safetensors"):
        ImageEncoder.from_pretrained(path)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ImageEncoder.from_pretrained(tmp_path / "nothing.safetensors")


def test_a_corrupt_file(tmp_path):
    path = Path(tmp_path / "corrupt.safetensors")
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=r"corrupt\.safetensors"):
        ImageEncoder.from_pretrained(path)


def test_released_towers_have_known_heads_and_activations():
    # ViT-L/14 (OpenAI, quick GELU), ViT-H/14 and ViT-bigG/14 (LAION, GELU): 16 heads each.
    assert (VIT_L.hidden_width, VIT_L.heads, VIT_L.activation) == (1024, 16, "quick_gelu")
    assert (VIT_H.hidden_width, VIT_H.heads, VIT_H.activation) == (1280, 16, "gelu")
    assert (VIT_BIGG.hidden_width, VIT_BIGG.heads, VIT_BIGG.activation) == (1664, 16, "gelu")


def test_a_config_beside_the_file_gives_heads_and_activation(tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(4)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=40,
        num_attention_heads=4,  # not what 32-wide shapes suggest
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    folder = tmp_path / "tower"
    CLIPVisionModelWithProjection(config).save_pretrained(folder, safe_serialization=True)
    size = {"shortest_edge": 32}
    CLIPImageProcessor(size=size, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    from_folder = ImageEncoder.from_pretrained(folder)(IMAGE)
    from_file = ImageEncoder.from_pretrained(folder / "model.safetensors")(IMAGE)
    torch.testing.assert_close(from_file, from_folder)
