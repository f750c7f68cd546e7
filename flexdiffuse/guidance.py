"""Guiding a whole conditioning: one or more vision towers, each on its part of the width.

SD 1.x and 2.x condition on one text encoder, so one tower covers the whole width. SDXL
concatenates two text encoders' states (CLIP ViT-L/14, 768, then OpenCLIP ViT-bigG/14, 1280);
each part is aligned and tweened with the vision tower of its own text encoder, independently
(docs/algorithm.md §13). Channels no tower covers are left as they are.

SDXL also conditions on a pooled vector whose first 1280 channels are the prompt's pooled
OpenCLIP ViT-bigG embedding; :meth:`ConditioningGuide.apply_pooled` can move that part toward
the image's pooled embedding (the projected class token), an option beyond the original method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine import guide, pure_image_guidance
from .params import GuidanceParams
from .recipes import ImageGroup, guide_groups


@dataclass(frozen=True)
class PartGuide:
    """One vision tower's image tokens and the part of the conditioning width they guide.

    ``image_tokens`` is ``[n, d]`` (several images' tokens concatenated, the first image's
    first); the part is channels ``channel_start .. channel_start + d``. ``token_weights``
    ``[n]`` weighs each token by its image (None: all 1). ``concept_cond`` is the same part of
    the encoded mapping-concepts prompt, ``[77, d]``.

    Images with recipes of their own (docs/algorithm.md §17) or masks (§18) come as
    ``groups``: then ``image_tokens`` are the groups' kept tokens in group order, guided by
    :func:`~flexdiffuse.recipes.guide_groups` when there are several groups. ``per_image`` is
    how many tokens the tower gives an image and ``keeps`` each image's mask keep (None: no
    mask), for the preview.
    """

    channel_start: int
    image_tokens: torch.Tensor
    concept_cond: torch.Tensor | None = None
    token_weights: torch.Tensor | None = None
    groups: tuple[ImageGroup, ...] = ()
    per_image: int = 0
    keeps: tuple[torch.Tensor | None, ...] = ()

    @classmethod
    def of_groups(
        cls,
        channel_start: int,
        groups: Sequence[ImageGroup],
        concept_cond: torch.Tensor | None = None,
        *,
        per_image: int = 0,
        keeps: Sequence[torch.Tensor | None] = (),
    ) -> PartGuide:
        """The part guided by image ``groups`` (one group: exactly the plain method's path)."""
        weights = groups[0].token_weights if len(groups) == 1 else None
        return cls(
            channel_start,
            torch.cat([group.image_tokens for group in groups]),
            concept_cond,
            weights,
            tuple(groups),
            per_image,
            tuple(keeps),
        )

    def params(self, job: GuidanceParams) -> GuidanceParams:
        """The parameters its images guide with: their one recipe's, else the ``job``'s."""
        return self.groups[0].params if len(self.groups) == 1 else job

    @property
    def token_ids(self) -> torch.Tensor:
        """Each of ``image_tokens``' number among all its images' tokens, unmasked ``[n]``."""
        ids = [group.token_ids for group in self.groups]
        if not ids or any(i is None for i in ids):
            return torch.arange(len(self.image_tokens))
        return torch.cat(ids)  # type: ignore[arg-type]

    @property
    def channel_stop(self) -> int:
        """One past the last channel of the part."""
        return self.channel_start + self.image_tokens.shape[-1]


@dataclass(frozen=True)
class ConditioningGuide:
    """Guides conditionings of one checkpoint: every part by its tower, the pooled vector.

    ``pooled_image`` is the image's pooled embedding ``[w]`` that ``pooled`` (0..1) blends the
    first ``w`` channels of a pooled text vector toward (None or 0: pooled vectors stay).
    """

    params: GuidanceParams
    parts: tuple[PartGuide, ...]
    pooled_image: torch.Tensor | None = None
    pooled: float = 0.0

    def __post_init__(self) -> None:
        previous_stop = 0
        for part in self._ordered():
            if part.channel_start < previous_stop:
                raise ValueError("ConditioningGuide parts must cover disjoint channels.")
            previous_stop = part.channel_stop

    def apply(self, text_cond: torch.Tensor, *, pure: bool = False) -> torch.Tensor:
        """The guided copy of ``text_cond`` ``[..., 77*k, width]``.

        With ``pure`` (the prompt is empty) every part takes the first image's tokens
        (docs/algorithm.md §6) instead of being guided, unless the image strength is 0 (§16).
        Inputs are never modified.
        """
        width = text_cond.shape[-1]
        pieces = []
        position = 0
        for part in self._ordered():
            start, stop = part.channel_start, part.channel_stop
            if stop > width:
                raise ValueError(
                    f"The conditioning has width {width}, but a vision tower guides channels "
                    f"{start}..{stop}: the vision model does not fit this checkpoint."
                )
            if start > position:
                pieces.append(text_cond[..., position:start])
            pieces.append(self._guide_part(text_cond[..., start:stop], part, pure))
            position = stop
        if position < width:
            pieces.append(text_cond[..., position:])
        if len(pieces) == 1 and pieces[0] is not text_cond:
            return pieces[0]
        return torch.cat(pieces, dim=-1)

    def apply_pooled(self, vector: torch.Tensor) -> torch.Tensor:
        """The pooled vector ``[..., v]`` with its text part blended toward the image's.

        The text part turns toward the image embedding's direction by ``pooled`` times the
        image strength, at most 1 (0: unchanged, 1: the image's direction), and keeps its
        length: the two embeddings come from different projections, whose scales differ
        (docs/algorithm.md §13, §16).
        """
        amount = self.pooled
        if self.params.strength != 1:
            amount = min(amount * self.params.strength, 1.0)
        if self.pooled_image is None or amount == 0:
            return vector
        width = self.pooled_image.shape[-1]
        text = vector[..., :width].float()
        length = text.norm(dim=-1, keepdim=True)
        image = self.pooled_image.to(device=vector.device, dtype=torch.float32)
        image = image * length / image.norm().clamp(min=1e-12)
        toward = torch.lerp(text, image, amount)
        blended = toward * length / toward.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.cat([blended.to(vector.dtype), vector[..., width:]], dim=-1)

    def _ordered(self) -> list[PartGuide]:
        return sorted(self.parts, key=lambda part: part.channel_start)

    def _guide_part(self, text: torch.Tensor, part: PartGuide, pure: bool) -> torch.Tensor:
        if pure:
            if self.params.strength == 0:
                return text.clone()
            return pure_image_guidance(text, part.image_tokens)
        if len(part.groups) > 1:
            return guide_groups(text, part.groups, part.concept_cond)
        return guide(
            text,
            part.image_tokens,
            part.params(self.params),
            part.concept_cond,
            token_weights=part.token_weights,
        )
