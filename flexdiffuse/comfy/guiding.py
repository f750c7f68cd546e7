"""Guiding ComfyUI conditionings with images: the node pack's work, on ComfyUI's objects.

ComfyUI passes a conditioning as a list of ``[tokens [B, 77*k, width], dict]`` entries (SDXL's
dict holds the ``pooled_output`` vector), a CLIP vision model as its ``CLIP_VISION`` object and
images as ``[B, H, W, C]`` tensors in 0..1. Everything here reads those objects by duck typing,
so it runs on ComfyUI's own objects and on the test fakes alike; the nodes (``nodes.py``) add
ComfyUI's progress bar and interrupt through the ``Steps`` they pass in.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..encoder import TokenCache
from ..engine import CHUNK
from ..guidance import ConditioningGuide, PartGuide
from ..known_towers import paired_tower
from ..params import JobParams

LAYOUTS: dict[int, tuple[int, ...]] = {
    768: (768,),  # SD 1.x: CLIP ViT-L/14
    1024: (1024,),  # SD 2.x: OpenCLIP ViT-H/14
    1280: (1280,),  # SDXL refiner: OpenCLIP ViT-bigG/14
    2048: (768, 1280),  # SDXL: ViT-L/14 states, then ViT-bigG/14 states
}
"""Conditioning width -> the token widths of its CLIP text encoders, in channel order. Each
part is guided by the vision tower trained with that text encoder (docs/algorithm.md §13)."""

MODEL_NAMES = {768: "SD 1.x", 1024: "SD 2.x", 1280: "an SDXL refiner", 2048: "SDXL"}

Conditioning = list[list[Any]]
"""ComfyUI's CONDITIONING: ``[[tokens, {"pooled_output": ..., ...}], ...]``."""


class GuideError(ValueError):
    """Input FlexDiffuse cannot guide; the message says what to connect instead."""


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


def tower_label(width: int) -> str:
    """The vision tower whose image tokens have ``width`` channels, as users know it."""
    paired = paired_tower(width)
    return paired.label if paired else f"a vision model of projection width {width}"


_CACHES: weakref.WeakKeyDictionary[Any, TokenCache] = weakref.WeakKeyDictionary()
"""Each loaded CLIP vision model's encodings by image content: changing a slider re-runs the
node, and the image need not go through the tower again. Goes with the model."""


def image_tokens(clip_vision: Any, pixels: torch.Tensor) -> list[torch.Tensor]:
    """FlexDiffuse's image tokens ``[n, d]`` of each picture of an IMAGE batch.

    ComfyUI's ``encode_image`` loads the tower with its model management, preprocesses
    (centre crop, bicubic resize, CLIP's normalisation) and returns the last hidden state
    before the post-layernorm; the tokens are that state through the tower's post-layernorm
    and visual projection (docs/algorithm.md, "Image tokens"), in float32. Encodings are
    cached per model and picture content.
    """
    check_images(pixels, "image")
    cache = _CACHES.setdefault(clip_vision, TokenCache())
    out = []
    for picture in pixels:
        key = _digest(picture)
        tokens = cache.get(key)
        if tokens is None:
            tokens = _encode(clip_vision, picture.unsqueeze(0))[0]
            cache.put(key, tokens)
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


def conditioning_width(conditioning: Any) -> int:
    """The width of a CONDITIONING's token states, checked to be one FlexDiffuse can guide."""
    if not isinstance(conditioning, list) or not conditioning:
        raise GuideError(
            "FlexDiffuse needs a CONDITIONING from a CLIP Text Encode node; got an empty one."
        )
    widths = {entry[0].shape[-1] for entry in conditioning}
    width = widths.pop()
    if widths or width not in LAYOUTS:
        known = ", ".join(f"{MODEL_NAMES[w]} ({w})" for w in LAYOUTS)
        raise GuideError(
            f"This conditioning has token width {width}, which comes from no CLIP text encoder "
            f"FlexDiffuse can guide (widths: {known}). Connect the conditioning of an SD 1.x, "
            "SD 2.x or SDXL checkpoint's CLIP Text Encode."
        )
    return width


def tower_parts(width: int, tower_widths: Sequence[int]) -> list[int]:
    """The channel start of the conditioning part each tower guides, in the towers' order.

    Raises:
        GuideError: a tower fits no part of the conditioning, or two towers fit the same part.
    """
    starts, start = {}, 0
    for part_width in LAYOUTS[width]:
        starts[part_width] = start
        start += part_width
    wanted = " and ".join(tower_label(w) for w in LAYOUTS[width])
    chosen = []
    for number, tower_width in enumerate(tower_widths, 1):
        if tower_width not in starts:
            raise GuideError(
                f"CLIP vision model {number} gives image tokens of width {tower_width} "
                f"({tower_label(tower_width)}), which fit no part of this {MODEL_NAMES[width]} "
                f"conditioning (width {width}). Load {wanted} with a Load CLIP Vision node."
            )
        if starts[tower_width] in chosen:
            raise GuideError(
                f"Both CLIP vision models are {tower_label(tower_width)}: connect "
                f"{tower_label(tower_width)} once, and for SDXL the other tower ({wanted})."
            )
        chosen.append(starts[tower_width])
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


@dataclass(frozen=True)
class EncodedTower:
    """One tower's tokens of every image: the prompt's (each with its weight), the negative's."""

    start: int
    tokens: list[torch.Tensor]
    weights: list[float]
    negative: torch.Tensor | None


def encode_towers(inputs: GuideInputs, width: int, steps: Steps) -> list[EncodedTower]:
    """Every tower's image tokens, each tower placed on its part of a ``width`` conditioning."""
    images = [group for group in inputs.images if group.weight > 0]
    if not images and inputs.negative is None:
        return []  # every image at weight 0: nothing guides, nothing to load
    encoded = []
    for tower in inputs.towers:
        steps.check_interrupt()
        tokens, weights = [], []
        for group in images:
            pictures = image_tokens(tower, group.pixels)
            tokens += pictures
            weights += [group.weight] * len(pictures)
        negative = None
        if inputs.negative is not None:
            negative = torch.cat(image_tokens(tower, inputs.negative.pixels))
        encoded.append(EncodedTower(0, tokens, weights, negative))
        steps.advance()
    token_widths = [_token_width(tower) for tower in encoded]
    starts = tower_parts(width, token_widths)
    return [
        EncodedTower(start, t.tokens, t.weights, t.negative)
        for start, t in zip(starts, encoded, strict=True)
    ]


def _token_width(tower: EncodedTower) -> int:
    source = tower.tokens[0] if tower.tokens else tower.negative
    assert source is not None
    return int(source.shape[-1])


def prompt_guide(
    params: JobParams, towers: list[EncodedTower], concepts: torch.Tensor | None
) -> ConditioningGuide | None:
    """The guide of the prompt by its images (None: no image of weight above 0)."""
    if not towers or not towers[0].tokens:
        return None
    parts = []
    for tower in towers:
        token_weights = None
        if any(weight != 1 for weight in tower.weights):  # all 1 is the algorithm's exact path
            token_weights = torch.cat(
                [torch.full((len(t),), w) for t, w in zip(tower.tokens, tower.weights, strict=True)]
            )
        concept = None
        if concepts is not None:
            concept = concepts[:, tower.start : tower.start + tower.tokens[0].shape[-1]]
        parts.append(PartGuide(tower.start, torch.cat(tower.tokens), concept, token_weights))
    return ConditioningGuide(
        params.guidance, tuple(parts), pooled_image(params, towers), params.pooled
    )


def negative_guide(params: JobParams, towers: list[EncodedTower]) -> ConditioningGuide | None:
    """The guide of the negative prompt by the negative image (None: no negative image)."""
    if not towers or towers[0].negative is None or params.negative_weight == 0:
        return None
    parts = []
    for tower in towers:
        assert tower.negative is not None
        token_weights = None
        if params.negative_weight != 1:
            token_weights = torch.full((len(tower.negative),), params.negative_weight)
        parts.append(PartGuide(tower.start, tower.negative, None, token_weights))
    return ConditioningGuide(params.guidance, tuple(parts))


BIGG_WIDTH = 1280


def pooled_image(params: JobParams, towers: list[EncodedTower]) -> torch.Tensor | None:
    """The images' pooled ViT-bigG embedding (their projected class tokens, weighted)."""
    if not params.pooled:
        return None
    bigg = [tower for tower in towers if tower.tokens and tower.tokens[0].shape[-1] == BIGG_WIDTH]
    if not bigg:
        raise GuideError(
            "Pooled image guidance moves SDXL's pooled ViT-bigG embedding, so it needs the "
            f"{tower_label(BIGG_WIDTH)} vision model: connect it as a CLIP vision model, or set "
            "pooled to 0."
        )
    classes = torch.stack([tokens[0] for tokens in bigg[0].tokens])
    mix = torch.tensor(bigg[0].weights, dtype=classes.dtype).unsqueeze(-1)
    return (classes * mix).sum(0) / mix.sum()


def check_pooled(params: JobParams, width: int) -> None:
    """Pooled guidance only where there is a pooled ViT-bigG vector: SDXL."""
    if params.pooled and LAYOUTS[width][-1] != BIGG_WIDTH:
        raise GuideError(
            f"Pooled image guidance works with SDXL only; set pooled to 0 for this "
            f"{MODEL_NAMES[width]} conditioning."
        )


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
    states = encode_text(inputs.clip, text)
    if states.shape[0] > CHUNK:
        raise GuideError(
            f"The mapping concepts prompt is {states.shape[0] // CHUNK} chunks long; it must fit "
            "in one (75 tokens). Name only the image concepts to map, e.g. 'dog, sunset'."
        )
    return states


def empty_prompt_states(clip: Any) -> torch.Tensor | None:
    """The graph CLIP's states of the empty prompt (None without a CLIP)."""
    return None if clip is None else encode_text(clip, "")


def is_empty_prompt(tokens: torch.Tensor, empty: torch.Tensor | None) -> bool:
    """Whether a conditioning entry's states ``[B, T, width]`` are the empty prompt's."""
    if empty is None or tokens.shape[-2:] != empty.shape:
        return False
    return bool(torch.equal(tokens, empty.to(tokens).expand_as(tokens)))


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
    check_pooled(inputs.params, width)
    if negative is not None and inputs.negative is not None:
        if conditioning_width(negative) != width:
            raise GuideError("The positive and negative conditionings come from different models.")
    elif inputs.negative is not None:
        raise GuideError("A negative image guides the negative conditioning: connect it.")
    with engine_errors():
        towers = encode_towers(inputs, width, steps)
        concepts = encode_concepts(inputs) if towers and towers[0].tokens else None
        prompt = prompt_guide(inputs.params, towers, concepts)
        guided = apply_guide(positive, prompt, steps, empty_prompt_states(inputs.clip))
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


def params_from_values(values: dict[str, Any], preset_values: dict[str, Any]) -> JobParams:
    """The job's parameters from the node's widget values, a preset's values over them.

    Raises:
        GuideError: a value out of its range, naming the parameter.
    """
    try:
        return JobParams().replace(**{**values, **preset_values})
    except ValueError as error:
        raise GuideError(f"FlexDiffuse: {error}") from error
