"""Fake ``comfy.sd.CLIP``: a deterministic toy text encoder with ComfyUI's interface.

Words get ids from a growing vocabulary; a chunk is ``[start, words..., end, padding]``
(77 ids, padded with the end token as SD's CLIP is, or with id 0, ``!``, as SDXL's ViT-bigG
tokenizer is: ``key="g"``) and encodes to a seeded embedding of
each id plus its position, ``width`` wide.
"""

import torch

START, END = 49406, 49407


class Tokenizer:
    def __init__(self):
        self.vocab = {"!": 0, "<|startoftext|>": START, "<|endoftext|>": END}

    def ids(self, text):
        words = text.replace(",", " , ").split()
        return [self.vocab.setdefault(f"{w}</w>", len(self.vocab)) for w in words]

    def untokenize(self, token_weight_pair):
        inverse = {v: k for k, v in self.vocab.items()}
        return [(pair, inverse[pair[0]]) for pair in token_weight_pair]


class CLIP:
    def __init__(self, width=24, key="l"):
        self.width = width
        self.key = key
        self.tokenizer = Tokenizer()

    def tokenize(self, text, return_word_ids=False, **kwargs):
        ids = self.tokenizer.ids(text)
        chunks = [ids[i : i + 75] for i in range(0, max(len(ids), 1), 75)]
        pad = 0 if self.key == "g" else END  # SDXL's bigG tokenizer: pad_with_end=False
        batches = [[START, *c, END] + [pad] * (75 - len(c)) for c in chunks]
        return {self.key: [[(i, 1.0) for i in batch] for batch in batches]}

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        rows = []
        for batch in tokens[self.key]:
            for position, (token, _) in enumerate(batch):
                generator = torch.Generator().manual_seed(token * 131 + position)
                rows.append(torch.randn(self.width, generator=generator))
        states = torch.stack(rows).unsqueeze(0)
        if return_pooled:
            return states, states[:, -1]
        return states
