"""Guiding a whole conditioning: one or more vision towers, each on its slice of the width.

SD 1.x and 2.x condition on one text encoder, so one tower covers the whole width. SDXL
concatenates two text encoders' states (CLIP ViT-L/14, 768, then OpenCLIP ViT-bigG/14, 1280);
each slice is aligned and tweened with the vision tower of its own text encoder, independently.
Channels no tower covers are left as they are.

SDXL also conditions on a pooled vector whose first 1280 channels are the prompt's pooled
OpenCLIP ViT-bigG embedding; :meth:`ImageGuidance.apply_pooled` can move that part toward the
image's pooled embedding (the projected class token), an option beyond the FlexDiffuse method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .engine import guide, pure_image_guidance
from .params import GuidanceParams


@dataclass(frozen=True)
class TowerGuidance:
    """One vision tower's image tokens and the slice of the conditioning width they guide.

    ``image_tokens`` is ``[n, d]`` (several images' tokens concatenated, the first image's
    first); the slice is channels ``start .. start + d``. ``token_weights`` ``[n]`` weighs
    each token by its image (None: all 1). ``concept_cond`` is the same slice of the encoded
    mapping-concepts prompt, ``[77, d]``.
    """

    start: int
    image_tokens: torch.Tensor
    concept_cond: torch.Tensor | None = None
    token_weights: torch.Tensor | None = None

    @property
    def stop(self) -> int:
        """One past the last channel of the slice."""
        return self.start + self.image_tokens.shape[-1]


@dataclass(frozen=True)
class ImageGuidance:
    """Everything needed to guide the conditionings of one generation.

    ``pooled_image`` is the image's pooled embedding ``[w]`` that ``params.pooled`` blends the
    first ``w`` channels of a pooled text vector toward (None: pooled vectors stay as they are).
    """

    params: GuidanceParams
    towers: tuple[TowerGuidance, ...]
    pooled_image: torch.Tensor | None = None

    def __post_init__(self) -> None:
        previous_stop = 0
        for tower in sorted(self.towers, key=lambda t: t.start):
            if tower.start < previous_stop:
                raise ValueError("ImageGuidance towers must cover disjoint channel slices.")
            previous_stop = tower.stop

    def apply(self, text_cond: torch.Tensor, *, pure: bool = False) -> torch.Tensor:
        """The guided copy of ``text_cond`` ``[..., 77*k, width]``.

        With ``pure`` (the prompt is empty) every tower's slice takes the first image's tokens
        (spec section 6) instead of being guided. Inputs are never modified.
        """
        width = text_cond.shape[-1]
        pieces = []
        position = 0
        for tower in sorted(self.towers, key=lambda t: t.start):
            if tower.stop > width:
                raise ValueError(
                    f"The conditioning has width {width}, but a vision tower guides channels "
                    f"{tower.start}..{tower.stop}: the vision model does not fit this checkpoint."
                )
            if tower.start > position:
                pieces.append(text_cond[..., position : tower.start])
            pieces.append(self._guide_slice(text_cond[..., tower.start : tower.stop], tower, pure))
            position = tower.stop
        if position < width:
            pieces.append(text_cond[..., position:])
        if len(pieces) == 1 and pieces[0] is not text_cond:
            return pieces[0]
        return torch.cat(pieces, dim=-1)

    def apply_pooled(self, vector: torch.Tensor) -> torch.Tensor:
        """The pooled vector ``[..., v]`` with its text part blended toward the image's.

        The text part turns toward the image embedding's direction by ``params.pooled`` (0:
        unchanged, 1: the image's direction) and keeps its length: the two embeddings come
        from different projections, whose scales differ.
        """
        if self.pooled_image is None or self.params.pooled == 0:
            return vector
        width = self.pooled_image.shape[-1]
        text = vector[..., :width].float()
        length = text.norm(dim=-1, keepdim=True)
        image = self.pooled_image.to(device=vector.device, dtype=torch.float32)
        image = image * length / image.norm().clamp(min=1e-12)
        toward = torch.lerp(text, image, self.params.pooled)
        blended = toward * length / toward.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.cat([blended.to(vector.dtype), vector[..., width:]], dim=-1)

    def _guide_slice(self, text: torch.Tensor, tower: TowerGuidance, pure: bool) -> torch.Tensor:
        if pure:
            return pure_image_guidance(text, tower.image_tokens)
        return guide(
            text,
            tower.image_tokens,
            self.params,
            tower.concept_cond,
            token_weights=tower.token_weights,
        )
