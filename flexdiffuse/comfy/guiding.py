"""Guiding ComfyUI conditionings with images: the node pack's work, on ComfyUI's objects.

ComfyUI passes a conditioning as a list of ``[tokens [B, 77*k, width], dict]`` entries (SDXL's
dict holds the ``pooled_output`` vector), a CLIP vision model as its ``CLIP_VISION`` object and
images as ``[B, H, W, C]`` tensors in 0..1. Everything here reads those objects by duck typing,
so it runs on ComfyUI's own objects and on the test fakes alike; the nodes (``nodes.py``) add
ComfyUI's progress bar and interrupt through the ``Steps`` they pass in. What both hosts do
(the families, the guides, every refusal's wording) is the core's: ``families.py`` and
``guides.py``, as in the webui; this module adapts ComfyUI's objects to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..encoder import TokenCache
from ..families import ConditioningPart, Family, family_of_width, supported_families
from ..guidance import ConditioningGuide
from ..guides import (
    Advice,
    EncodedPart,
    GuideError,
    ImageTokens,
    check_concepts,
    check_pooled,
    is_empty_prompt,
    negative_guide,
    nothing_to_guide,
    prompt_guide,
)
from ..known_towers import KnownTower, paired_tower
from ..params import JobParams

__all__ = ["GuideError", "GuideInputs", "Steps", "WeightedImages", "guide_conditionings"]

logger = logging.getLogger(__name__)

Conditioning = list[list[Any]]
"""ComfyUI's CONDITIONING: ``[[tokens, {"pooled_output": ..., ...}], ...]``."""


@dataclass(frozen=True)
class Steps:
    """How the nodes report progress and honour ComfyUI's interrupt between slow steps."""

    advance: Callable[[], None] = lambda: None
    check_interrupt: Callable[[], None] = lambda: None
    finish: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class WeightedImages:
    """One IMAGE input ``[B, H, W, C]`` (each picture of the batch a guidance image) and its
    weight."""

    pixels: torch.Tensor
    weight: float


COMFY_ADVICE = Advice(add_bigg="connect it to clip_vision_2")
"""What the nodes tell a user to do where the fix is one of ComfyUI's nodes."""


@dataclass(frozen=True)
class Tower:
    """A connected CLIP_VISION identified before any encoding: the known tower it is, and
    ``identity``, a digest of its configuration and projection that stays the same when
    ComfyUI loads the same file again."""

    model: Any
    known: KnownTower
    identity: str


_IDENTITIES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

_CACHE = TokenCache()
"""Encodings by tower identity and picture content: changing a slider, bypassing the node
for a run (ComfyUI then drops and later reloads the CLIP_VISION) cost no encoding."""


def identify_tower(clip_vision: Any, number: int) -> Tower:
    """The known tower a CLIP_VISION input is, from its model type and visual projection.

    ComfyUI replaces a missing visual projection by an identity, so the width of encoded
    tokens says nothing: the projection's own width names the text space it maps into.

    Raises:
        GuideError: not a CLIP vision model (SigLIP, DINO), one without its visual projection,
            or one whose projection pairs with no text encoder FlexDiffuse knows.
    """
    name = f"CLIP vision model {number}" if number > 1 else "The CLIP vision model"
    load = "Load CLIP ViT-L/14 (SD 1.x, SDXL), OpenCLIP ViT-H/14 (SD 2.x) or ViT-bigG/14 (SDXL)"
    model_type = getattr(clip_vision, "model_type", "clip_vision_model")
    if model_type != "clip_vision_model":
        raise GuideError(
            f"{name} is a {model_type.replace('_', ' ')}, not a CLIP vision model: its image "
            f"tokens share no text encoder's space. {load} with a Load CLIP Vision node."
        )
    model = getattr(clip_vision, "model", None)
    projection = getattr(getattr(model, "visual_projection", None), "weight", None)
    if not isinstance(projection, torch.Tensor):
        raise GuideError(
            f"{name} has no visual projection (ComfyUI loads such a file without one), so its "
            f"image tokens are not in a text encoder's space. {load} from a file that keeps "
            "its visual projection (IP-Adapter's image_encoder files do)."
        )
    known = paired_tower(int(projection.shape[0]))
    if known is None:
        raise GuideError(
            f"{name} projects into width {projection.shape[0]}, the space of no text encoder "
            f"FlexDiffuse guides. {load} with a Load CLIP Vision node."
        )
    identity = _IDENTITIES.get(clip_vision)
    if identity is None:
        identity = _IDENTITIES[clip_vision] = _tower_digest(clip_vision, projection)
    return Tower(clip_vision, known, identity)


def _tower_digest(clip_vision: Any, projection: torch.Tensor) -> str:
    """A few MB hashed once per loaded object: its config and its projection's weights."""
    digest = hashlib.blake2b(digest_size=16)
    config = getattr(clip_vision, "config", None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    data = projection.detach().to("cpu", torch.float32).contiguous().numpy()
    digest.update(data.tobytes())
    return digest.hexdigest()


def image_tokens(tower: Tower | Any, pixels: torch.Tensor) -> list[torch.Tensor]:
    """FlexDiffuse's image tokens ``[n, d]`` of each picture of an IMAGE batch.

    ComfyUI's ``encode_image`` loads the tower with its model management, preprocesses
    (centre crop, bicubic resize, CLIP's normalisation) and returns the last hidden state
    before the post-layernorm; the tokens are that state through the tower's post-layernorm
    and visual projection (docs/algorithm.md, "Image tokens"), in float32. Encodings are
    cached by the tower's identity and the picture's content.
    """
    if not isinstance(tower, Tower):
        tower = identify_tower(tower, 1)
    check_images(pixels, "image")
    out = []
    for picture in pixels:
        key = f"{tower.identity}:{_digest(picture)}"
        tokens = _CACHE.get(key)
        if tokens is None:
            tokens = _encode(tower.model, picture.unsqueeze(0))[0]
            _CACHE.put(key, tokens)
        out.append(tokens)
    return out


def _digest(picture: torch.Tensor) -> str:
    data = picture.detach().to("cpu", torch.float32).contiguous().numpy()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(tuple(data.shape)).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


def _encode(clip_vision: Any, pixels: torch.Tensor) -> list[torch.Tensor]:
    encoded = clip_vision.encode_image(pixels, crop=True)
    model = clip_vision.model
    hidden = encoded["last_hidden_state"].to(clip_vision.load_device)
    with torch.no_grad():
        tokens = model.visual_projection(model.vision_model.post_layernorm(hidden))
    return list(tokens.float().cpu().unbind(0))


def check_images(pixels: Any, name: str) -> None:
    """Refuse what is not a non-empty ComfyUI IMAGE batch."""
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4:
        raise GuideError(
            f"FlexDiffuse's {name} input must be an IMAGE (a batch [B, H, W, C]); connect a "
            "Load Image node or another node's IMAGE output."
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0 or pixels.shape[2] == 0:
        raise GuideError(
            f"FlexDiffuse's {name} input is an empty image batch {tuple(pixels.shape)}; "
            "connect at least one image."
        )


def conditioning_width(conditioning: Any, name: str = "positive") -> int:
    """The width of a CONDITIONING's token states, checked to be one FlexDiffuse can guide."""
    return conditioning_family(conditioning, name).width


def conditioning_family(conditioning: Any, name: str = "positive") -> Family:
    """The family of the checkpoint a CONDITIONING (input ``name``) comes from, by its width.

    Raises:
        GuideError: an empty conditioning, or one of no text encoder FlexDiffuse can guide.
    """
    if not isinstance(conditioning, list) or not conditioning:
        raise GuideError(
            f"FlexDiffuse's {name} input needs a CONDITIONING from a CLIP Text Encode node; "
            "got an empty one."
        )
    widths = {entry[0].shape[-1] for entry in conditioning}
    width = widths.pop()
    family = family_of_width(width)
    if widths or family is None:
        raise GuideError(
            f"FlexDiffuse's {name} conditioning has token width {width}, which comes from no "
            f"CLIP text encoder FlexDiffuse can guide (widths: {supported_families()}). "
            "Connect the conditioning of an SD 1.x, SD 2.x or SDXL checkpoint's CLIP Text "
            "Encode."
        )
    return family


def tower_parts(family: Family, towers: Sequence[Tower]) -> list[ConditioningPart]:
    """The conditioning part each tower guides, in the towers' order (before any encoding).

    Raises:
        GuideError: a tower fits no part of the conditioning, or two towers fit the same part.
    """
    chosen: list[ConditioningPart] = []
    for number, tower in enumerate(towers, 1):
        part = family.part_of(tower.known)
        if part is None:
            raise GuideError(
                f"CLIP vision model {number} is {tower.known.label}, which fits no part of "
                f"this {family.name} conditioning (width {family.width}). Load "
                f"{family.towers} with a Load CLIP Vision node."
            )
        if part in chosen:
            others = [p.tower.label for p in family.parts if p != part]
            advice = f" and {' and '.join(others)} as the other" if others else ""
            raise GuideError(
                f"Both CLIP vision models are {tower.known.label}: connect it once{advice}."
            )
        chosen.append(part)
    return chosen


@dataclass(frozen=True)
class GuideInputs:
    """What one guiding node was given besides the conditionings.

    ``towers`` are CLIP_VISION objects (one per text encoder part to guide), ``images`` the
    prompt's guidance images with their weights, ``negative`` the negative image (None: none),
    ``clip`` the graph's CLIP (for the mapping-concepts prompt and to recognise an empty
    prompt; None: neither).
    """

    params: JobParams
    towers: tuple[Any, ...]
    images: tuple[WeightedImages, ...]
    negative: WeightedImages | None = None
    clip: Any = None


def encode_towers(inputs: GuideInputs, width: int, steps: Steps) -> list[EncodedPart]:
    """Every tower's image tokens, each tower identified and placed on its part of a
    ``width`` conditioning before anything is encoded."""
    family = family_of_width(width)
    assert family is not None  # conditioning_family checked it
    towers = [identify_tower(tower, number) for number, tower in enumerate(inputs.towers, 1)]
    parts = tower_parts(family, towers)
    images = [group for group in inputs.images if group.weight > 0]
    if images:
        check_pooled(inputs.params, family, parts, COMFY_ADVICE)
    if not images and inputs.negative is None:
        return []  # every image at weight 0: nothing guides, nothing to load
    encoded = []
    for tower, part in zip(towers, parts, strict=True):
        steps.check_interrupt()
        tokens = [
            ImageTokens(picture, group.weight)
            for group in images
            for picture in image_tokens(tower, group.pixels)
        ]
        negative = None
        if inputs.negative is not None:
            negative = torch.cat(image_tokens(tower, inputs.negative.pixels))
        encoded.append(EncodedPart(part, tokens, negative))
        steps.advance()
    return encoded


def encode_text(clip: Any, text: str) -> torch.Tensor:
    """The token states ``[77*k, width]`` of ``text`` through the graph's CLIP."""
    states = clip.encode_from_tokens(clip.tokenize(text))
    return states[0] if states.ndim == 3 else states


def encode_concepts(inputs: GuideInputs) -> torch.Tensor | None:
    """The mapping-concepts prompt's states ``[77, width]``, or None when it is empty."""
    text = inputs.params.concepts
    if not text.strip():
        return None
    if inputs.clip is None:
        raise GuideError(
            "The mapping concepts are encoded with the graph's CLIP: connect the checkpoint "
            "loader's CLIP output to FlexDiffuse's clip input, or clear the concepts."
        )
    return check_concepts(encode_text(inputs.clip, text))


def empty_prompt_states(clip: Any) -> torch.Tensor | None:
    """The graph CLIP's states of the empty prompt (None without a CLIP)."""
    return None if clip is None else encode_text(clip, "")


def apply_guide(
    conditioning: Conditioning,
    guide: ConditioningGuide | None,
    steps: Steps,
    empty: torch.Tensor | None = None,
) -> Conditioning:
    """A guided copy of ``conditioning`` (its dicts copied, the pooled vector moved too).

    An entry whose states are the empty prompt's (``empty``) takes the image instead of
    being guided (pure image guidance, docs/algorithm.md §6).
    """
    if guide is None:
        return conditioning
    guided = []
    for tokens, extra in conditioning:
        steps.check_interrupt()
        new_extra = dict(extra)
        if extra.get("pooled_output") is not None:
            new_extra["pooled_output"] = guide.apply_pooled(extra["pooled_output"])
        guided.append([guide.apply(tokens, pure=is_empty_prompt(tokens, empty)), new_extra])
        steps.advance()
    return guided


def guide_conditionings(
    inputs: GuideInputs,
    positive: Conditioning,
    negative: Conditioning | None,
    steps: Steps,
) -> tuple[Conditioning, Conditioning | None]:
    """The guided positive and negative conditionings (the node's whole job).

    Raises:
        GuideError: anything FlexDiffuse cannot guide, saying what to connect instead.
    """
    width = conditioning_width(positive)
    if negative is not None and inputs.negative is not None:
        if conditioning_width(negative, "negative") != width:
            raise GuideError(
                "FlexDiffuse's positive and negative conditionings come from different "
                "models: connect the negative prompt's CLIP Text Encode of the same checkpoint."
            )
    elif inputs.negative is not None:
        raise GuideError(
            "A negative image guides the negative conditioning: connect FlexDiffuse's "
            "negative input."
        )
    with engine_errors():
        towers = encode_towers(inputs, width, steps)
        concepts = encode_concepts(inputs) if towers and towers[0].images else None
        empty = empty_prompt_states(inputs.clip)
        check_guides_something(inputs, positive, empty)
        prompt = prompt_guide(inputs.params, towers, concepts)
        guided = apply_guide(positive, prompt, steps, empty)
        guided_negative = negative
        if negative is not None:
            guided_negative = apply_guide(negative, negative_guide(inputs.params, towers), steps)
    steps.finish()  # weight 0 skips work
    return guided, guided_negative


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's own refusals (shapes, NaNs) as :class:`GuideError`, said as FlexDiffuse's."""
    try:
        yield
    except GuideError:
        raise
    except ValueError as error:
        raise GuideError(f"FlexDiffuse: {error}") from error


def work_units(inputs: GuideInputs, positive: Conditioning, negative: Conditioning | None) -> int:
    """How many :class:`Steps` advances :func:`guide_conditionings` makes at most."""
    negatives = len(negative) if negative is not None and inputs.negative is not None else 0
    return len(inputs.towers) + len(positive) + negatives


def check_guides_something(
    inputs: GuideInputs, positive: Conditioning, empty: torch.Tensor | None
) -> None:
    """Refuse settings that move no token (the core's rule, as the webui notes it); an image
    weight or a strength of 0 is ComfyUI's off switch: the conditioning passes, logged."""
    images = any(group.weight > 0 for group in inputs.images)
    negative = inputs.negative is not None and inputs.params.negative_weight > 0
    empty_prompt = any(is_empty_prompt(tokens, empty) for tokens, _ in positive)
    note = nothing_to_guide(
        inputs.params, images=images, negative=negative, empty_prompt=empty_prompt
    )
    if note is None:
        return
    if not (images or negative) or inputs.params.guidance.strength == 0:
        logger.info(note)
        return
    raise GuideError(f"{note} Name the concepts to map, pick another preset or bypass the node.")
