"""Shared test setup: hypothesis profile, test data location, tiny CLIP vision models."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("default")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "webui", "live tests against a running A1111 webui (opt-in; bash tests/ci.sh starts one)"
    )
    group.addoption(
        "--webui-url",
        default=None,
        help="URL of a running A1111 with FlexDiffuse installed and --api, e.g. "
        "http://127.0.0.1:7860; the live tests are skipped without it",
    )
    for key, label in (("vit-l", "ViT-L/14"), ("vit-h", "ViT-H/14"), ("vit-bigg", "ViT-bigG/14")):
        group.addoption(
            f"--webui-{key}",
            default=None,
            help=f"{label} vision model (id, folder or file, as the server sees it) for live "
            "jobs; default: the webui's own setting",
        )
    for family in ("sd2", "sdxl"):
        group.addoption(
            f"--webui-{family}-checkpoint",
            default=None,
            help=f"title of an {family.upper()} checkpoint of the webui: adds live {family} runs",
        )
    comfy = parser.getgroup(
        "comfyui", "live tests against a running ComfyUI (opt-in; bash tests/ci.sh starts one)"
    )
    comfy.addoption(
        "--comfyui-url",
        default=None,
        help="URL of a running ComfyUI with this checkout in custom_nodes/, e.g. "
        "http://127.0.0.1:8188; tests/live_comfy is skipped without it",
    )
    for option, what in (
        ("--comfyui-sdxl-checkpoint", "an SDXL checkpoint (ckpt_name): adds the SDXL runs"),
        ("--comfyui-vit-bigg", "a ViT-bigG/14 CLIP vision file (clip_name): adds the SDXL runs"),
        ("--comfyui-vit-h", "a ViT-H/14 CLIP vision file (clip_name): adds its checks"),
    ):
        comfy.addoption(option, default=None, help=f"the live ComfyUI's {what}")
    comfy.addoption(
        "--comfyui-dir",
        default=None,
        help="the live-comfyui host folder (../shared/hosts/live-comfyui): adds the checks that "
        "read its server log and run its Python (image tokens equal the core encoder's)",
    )


TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


@pytest.fixture
def testdata() -> Path:
    """The real test images beside the checkout (``../shared/testdata``), or skip."""
    if not TESTDATA.is_dir():
        pytest.skip(f"real test images not found at {TESTDATA}")
    return TESTDATA


TINY_IMAGE_SIZE = 32
TINY_PATCH = 8
TINY_TOKENS = (TINY_IMAGE_SIZE // TINY_PATCH) ** 2 + 1  # patches + class token


def tiny_vision_config(projection_dim: int = 24, hidden_size: int = 32):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH,
        projection_dim=projection_dim,
    )


def save_tiny_clip(
    folder: Path,
    *,
    full_clip: bool = False,
    safetensors: bool = True,
    projection_dim: int = 24,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLIP model and its image processor with ``save_pretrained``.

    ``full_clip`` saves a whole ``CLIPModel`` (text and vision), the layout of the real
    ``openai/clip-vit-large-patch14`` repository; otherwise a vision tower with projection.
    ``projection_dim`` is the width of its image tokens (768, 1024, 1280 for the real towers).
    """
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTextConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    vision = tiny_vision_config(projection_dim)
    if full_clip:
        text = CLIPTextConfig(
            hidden_size=24, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2
        )
        config = CLIPConfig.from_text_vision_configs(text, vision, projection_dim=projection_dim)
        model = CLIPModel(config)
    else:
        model = CLIPVisionModelWithProjection(vision)
    model.save_pretrained(folder, safe_serialization=safetensors)
    size = {"shortest_edge": TINY_IMAGE_SIZE}
    crop = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    CLIPImageProcessor(size=size, crop_size=crop).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A folder with a tiny random CLIP vision tower, as save_pretrained writes it."""
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding a tiny full CLIPModel under the real SD 1.x model id."""
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--openai--clip-vit-large-patch14"
    revision = "0" * 40
    save_tiny_clip(repo / "snapshots" / revision, full_clip=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return cache
