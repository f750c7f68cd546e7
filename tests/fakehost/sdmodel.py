"""A fake Stable Diffusion model: family flags and a deterministic text encoder.

Prompts encode to ``[77*k, width]`` (SDXL: ``{"crossattn", "vector"}``) with one 77-token chunk
per 75 words; every chunk starts with the same BOS state. A batch is padded to its longest
prompt with empty-prompt chunks, as A1111's CLIP wrapper does.
"""

import math
import zlib
from collections import namedtuple
from types import SimpleNamespace

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
        wrapper = FakeTextWrapper()  # SDXL: the hijack's clip is the conditioner
        self.text_wrapper = SimpleNamespace(embedders=[wrapper]) if self.is_sdxl else wrapper

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


PromptChunk = namedtuple("PromptChunk", ["tokens", "multipliers", "fixes"])
PromptChunkFix = namedtuple("PromptChunkFix", ["offset", "embedding"])


class FakeTokenizer:
    """Words are tokens; ids are given out as words are met."""

    def __init__(self):
        self.ids = {"<|startoftext|>": 49406, "<|endoftext|>": 49407}

    def convert_ids_to_tokens(self, token):
        words = [word for word, number in self.ids.items() if number == token]
        return (words[0] if words else "!") + "</w>"

    def encode(self, word):
        return self.ids.setdefault(word, len(self.ids) + 100)


class FakeTextWrapper:
    """Mirrors A1111's ``FrozenCLIPEmbedderWithCustomWords.tokenize_line``: 75 words a chunk,
    each chunk <start> + tokens + <end>, padded with <end>; words named ``emb:<name>`` are a
    two-vector textual-inversion embedding."""

    chunk_length = 75

    def __init__(self):
        self.tokenizer = FakeTokenizer()
        self.id_start, self.id_end = 49406, 49407

    def tokenize_line(self, line):
        chunks, tokens, fixes = [], [], []
        for word in line.split():
            if len(tokens) == self.chunk_length:
                chunks.append(self._chunk(tokens, fixes))
                tokens, fixes = [], []
            if word.startswith("emb:"):
                fixes.append(PromptChunkFix(len(tokens), SimpleNamespace(name=word[4:], vectors=2)))
                tokens += [0, 0]
            else:
                tokens.append(self.tokenizer.encode(word))
        chunks.append(self._chunk(tokens, fixes))
        return chunks, sum(len(c.tokens) for c in chunks)

    def _chunk(self, tokens, fixes):
        padded = [self.id_start, *tokens, *[self.id_end] * (self.chunk_length + 1 - len(tokens))]
        return PromptChunk(padded, [1.0] * len(padded), fixes)
