"""A fake Stable Diffusion model: family flags and a deterministic text encoder.

Prompts encode to ``[77*k, width]`` (SDXL: ``{"crossattn", "vector"}``) with one 77-token chunk
per 75 words; every chunk starts with the same BOS state. A batch is padded to its longest
prompt with empty-prompt chunks, as A1111's CLIP wrapper does.
"""

import math
import zlib

import torch

WIDTHS = {"sd1": 768, "sd2": 1024, "sdxl": 2048, "sd3": 4096}
CHUNK = 77


class FakeSdModel:
    def __init__(self, family="sd1", width=None):
        self.is_sd1 = family == "sd1"
        self.is_sd2 = family == "sd2"
        self.is_sdxl = family == "sdxl"
        self.is_sd3 = family == "sd3"
        self.width = width or WIDTHS[family]
        self.encoded = []  # every batch of texts encoded, for tests
        self._bos = _randn(self.width, seed=1)
        self.cond_stage_model_empty_prompt = self._chunks("").unsqueeze(0)

    def get_learned_conditioning(self, texts):
        self.encoded.append(list(texts))
        rows = [self._chunks(text) for text in texts]
        tokens = max(row.shape[0] for row in rows)
        empty = self._chunks("")
        rows = [torch.cat([row, *[empty] * ((tokens - row.shape[0]) // CHUNK)]) for row in rows]
        crossattn = torch.stack(rows)
        if not self.is_sdxl:
            return crossattn
        vector = torch.stack([_randn(2816, seed=_seed(text, -1)) for text in texts])
        return {"crossattn": crossattn, "vector": vector}

    def _chunks(self, text):
        words = text.split()
        count = max(1, math.ceil(len(words) / 75))
        chunks = []
        for index in range(count):
            body = _randn(CHUNK - 1, self.width, seed=_seed(text, index))
            chunks.append(torch.cat([self._bos.unsqueeze(0), body]))
        return torch.cat(chunks)


def _seed(text, index):
    return zlib.crc32(f"{index}:{text}".encode())


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
