"""Building a job's guides from the loaded checkpoint, the settings and the script's args."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..encoder import ModelLoadError
from ..engine import CHUNK
from ..guidance import ConditioningGuide, PartGuide
from ..images import GuidanceImage
from . import settings
from .args import NEGATIVE_INPUT, ScriptArgs
from .conds import token_states
from .errors import FlexDiffuseError
from .families import SDXL, VIT_BIGG, ConditioningPart, Family, detect_family
from .job import JobGuides
from .runtime import Runtime
from .vision_towers import TowerPlacement, TowerProgress


@dataclass(frozen=True)
class CheckpointInputs:
    """What a job's guides take from the loaded checkpoint: its family, the parts to guide,
    and the encoded mapping-concepts prompt (None: no concepts)."""

    family: Family
    parts: tuple[ConditioningPart, ...]
    concepts: torch.Tensor | None


def build_guides(args: ScriptArgs, width: int, runtime: Runtime) -> JobGuides:
    """The guides ``args`` asks for: its images through the family's towers, concepts encoded.

    ``width`` is the width of the loaded checkpoint's conditioning. A job builds them when
    its first batch starts sampling (its prompts are encoded then), and again if the
    checkpoint changes during the job.

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, a vision model that does not fit
            or cannot be loaded, or a mapping-concepts prompt over one chunk.
    """
    return encode_guides(args, checkpoint_inputs(args, width, runtime), runtime)


def checkpoint_inputs(args: ScriptArgs, width: int, runtime: Runtime) -> CheckpointInputs:
    """The part of building guides that uses the loaded checkpoint (and nothing slow else).

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, or concepts over one chunk.
    """
    host = runtime.host
    if host.unsupported:
        raise FlexDiffuseError(host.unsupported)
    family = detect_family(host.sd_model())
    _check_width(width, family)
    parts = guided_parts(runtime, family)
    _check_pooled(args, family, parts)
    concepts = None
    if args.guidance_images():
        concepts = _encode_concepts(runtime, args.params.concepts)
    return CheckpointInputs(family, parts, concepts)


def encode_guides(args: ScriptArgs, inputs: CheckpointInputs, runtime: Runtime) -> JobGuides:
    """The guides from the images' tokens (vision towers loaded as needed) and ``inputs``.

    Raises:
        FlexDiffuseError: a vision model that does not fit or cannot be loaded.
    """
    host, params, parts = runtime.host, args.params, inputs.parts
    device, dtype = host.tower_device_and_dtype(settings.towers_on_cpu(host))
    placement = TowerPlacement(
        device,
        dtype,
        download_dir=settings.download_dir(host),
        keep_loaded=settings.keep_loaded(host),
        park=host.tower_park(device),
        make_room=lambda size: host.make_room(size, device),
    )
    # Towers no tower setting names any more (a setting changed for this request only, or a
    # file found on disk now resolves the default) go before any other loads.
    runtime.towers.retain(settings.sources_in_use(host))
    images = args.guidance_images()
    negative_image = args.negative_image
    # Each tower encodes all of the job's images in one go (loaded once, even if not kept).
    everything = [image for image, _ in images] + ([negative_image] if negative_image else [])
    encoded = {
        part: _encode(runtime, part, everything, placement, inputs.family)
        for part in parts
        if everything
    }
    prompt = negative = None
    if images:
        weights = [weight for _, weight in images]
        guides = tuple(
            _part_guide(part, encoded[part][: len(images)], weights, inputs.concepts)
            for part in parts
        )
        pooled_image = _pooled_image(args, guides, parts, weights)
        prompt = ConditioningGuide(params.guidance, guides, pooled_image, params.pooled)
    if negative_image is not None:
        weights = [args.weight(NEGATIVE_INPUT)]
        guides = tuple(_part_guide(part, encoded[part][-1:], weights, None) for part in parts)
        negative = ConditioningGuide(params.guidance, guides)
    if not placement.keep_loaded or placement.park is not None:
        host.free_memory()
    return JobGuides(prompt, negative)


def guided_parts(runtime: Runtime, family: Family) -> tuple[ConditioningPart, ...]:
    """The parts of ``family``'s conditioning that the settings ask to guide."""
    if family is SDXL and settings.sdxl_vit_l_only(runtime.host):
        return family.parts[:1]
    return family.parts


def _check_pooled(args: ScriptArgs, family: Family, parts: tuple[ConditioningPart, ...]) -> None:
    if not args.params.pooled or not args.guidance_images():
        return
    if family is not SDXL:
        raise FlexDiffuseError(
            f"Pooled image guidance works with SDXL checkpoints only; set it to 0 for this "
            f"{family.name} checkpoint."
        )
    if all(part.tower is not VIT_BIGG for part in parts):
        raise FlexDiffuseError(
            "Pooled image guidance needs the ViT-bigG vision model: turn off 'SDXL: guide only "
            "the ViT-L part' in Settings > FlexDiffuse, or set pooled image guidance to 0."
        )


def _encode(
    runtime: Runtime,
    part: ConditioningPart,
    images: list[GuidanceImage],
    placement: TowerPlacement,
    family: Family,
) -> list[torch.Tensor]:
    """Every image's tokens from the part's tower, checked to fit the part.

    The job's progress text says what is loaded, downloaded and encoded, and Interrupt or
    Skip stops a download or load.
    """
    host, tower = runtime.host, part.tower
    source = settings.source_to_load(host, tower)
    progress = TowerProgress(host.set_progress_text, host.stop_requested)
    try:
        encoded = runtime.towers.encode(source, images, placement, tower.label, progress)
    except ModelLoadError as error:
        raise FlexDiffuseError(str(error)) from error
    finally:
        host.set_progress_text(None)
    width = encoded[0].shape[-1]
    if width != tower.token_width:
        raise FlexDiffuseError(
            f"The CLIP vision model '{source}' gives image tokens of width {width}, but "
            f"{family.name} needs a {tower.label} vision model (width "
            f"{tower.token_width}). In Settings > FlexDiffuse, set the {tower.label} model "
            f"to such a model (default: {tower.default_source})."
        )
    return encoded


def _part_guide(
    part: ConditioningPart,
    encoded: list[torch.Tensor],
    weights: list[float],
    concepts: torch.Tensor | None,
) -> PartGuide:
    """The part's guide by the images ``encoded``, each token weighted by its image."""
    token_weights = None
    if any(weight != 1 for weight in weights):  # all 1 is the algorithm's exact path
        token_weights = torch.cat(
            [torch.full((len(t),), w) for t, w in zip(encoded, weights, strict=True)]
        )
    start, stop = part.channel_start, part.channel_stop
    concept = concepts[:, start:stop] if concepts is not None else None
    return PartGuide(start, torch.cat(encoded), concept, token_weights)


def _pooled_image(
    args: ScriptArgs,
    guides: tuple[PartGuide, ...],
    parts: tuple[ConditioningPart, ...],
    weights: list[float],
) -> torch.Tensor | None:
    """The images' pooled bigG embedding (projected class token), weighted, for SDXL."""
    if not args.params.pooled:
        return None
    guide = next(g for g, part in zip(guides, parts, strict=True) if part.tower is VIT_BIGG)
    counts = [len(guide.image_tokens) // len(weights)] * len(weights)
    classes = torch.stack([tokens[0] for tokens in guide.image_tokens.split(counts)])
    mix = torch.tensor(weights, dtype=classes.dtype, device=classes.device).unsqueeze(-1)
    return (classes * mix).sum(0) / mix.sum()


def _check_width(width: int, family: Family) -> None:
    if width != family.width:
        raise FlexDiffuseError(
            f"This {family.name} checkpoint conditions on width {width}, not "
            f"{family.name}'s {family.width}, so FlexDiffuse has no vision model for it (an "
            "SDXL refiner or a custom text encoder?). Disable FlexDiffuse for this checkpoint."
        )


def _encode_concepts(runtime: Runtime, text: str) -> torch.Tensor | None:
    if not text.strip():
        return None
    tokens = token_states(runtime.host.encode_prompt(text))
    if tokens.shape[0] > CHUNK:
        raise FlexDiffuseError(
            f"The mapping concepts prompt is {tokens.shape[0] // CHUNK} chunks long; it must fit "
            "in one (75 tokens). Name only the image concepts to map, e.g. 'dog, sunset'."
        )
    return tokens
