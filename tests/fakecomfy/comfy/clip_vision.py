"""Fake ``comfy.clip_vision``: a transformers CLIP vision tower behind ComfyUI's interface."""

import torch

from . import model_management

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


class Output:
    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, item):
        setattr(self, key, item)


class ClipVisionModel:
    """``model`` is a transformers ``CLIPVisionModelWithProjection``: it has ComfyUI's
    ``vision_model.post_layernorm`` and ``visual_projection``."""

    def __init__(self, model):
        self.model = model.eval()
        self.config = model.config.to_dict()
        self.model_type = self.config.get("model_type", "clip_vision_model")
        self.image_size = model.config.image_size
        self.load_device = model_management.text_encoder_device()
        self.patcher = object()
        self.encodings = 0

    def encode_image(self, image, crop=True):
        model_management.load_model_gpu(self.patcher)
        self.encodings += 1
        pixels = preprocess(image, self.image_size)
        with torch.no_grad():
            hidden = self.model.vision_model(pixel_values=pixels).last_hidden_state
        out = Output()
        out["last_hidden_state"] = hidden
        out["image_embeds"] = self.model.visual_projection(
            self.model.vision_model.post_layernorm(hidden[:, 0])
        )
        return out


def preprocess(image, size):
    """[B, H, W, C] in 0..1 -> normalised [B, 3, size, size]: the shorter side resized to
    ``size`` (bicubic, antialiased), centre crop, 8-bit rounding, CLIP's mean and std."""
    x = image[..., :3].movedim(-1, 1)
    if x.shape[-2:] != (size, size):
        scale = size / min(x.shape[-2:])
        new = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
        x = torch.nn.functional.interpolate(x, size=new, mode="bicubic", antialias=True)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top : top + size, left : left + size]
    x = (x * 255).clamp(0, 255).round() / 255
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std
