"""Vision towers on a host whose memory manager owns the GPU (Forge): room is asked for
before a tower moves to the GPU, and the tower waits on the CPU between encodings.

No GPU is needed: the fake encoder records where it is moved instead of moving.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from flexdiffuse.images import GuidanceImage
from flexdiffuse.webui.models import TowerPlacement, VisionTowers
from tests.webui.conftest import gradient

GPU, CPU = torch.device("cuda", 0), torch.device("cpu")


class FakeEncoder:
    def __init__(self, device, dtype, moves):
        self.device, self.dtype, self.moves = torch.device(device), dtype, moves
        self.model = SimpleNamespace(parameters=lambda: [torch.zeros(10, 10), torch.zeros(5)])
        self.cache = None

    def to(self, device=None, dtype=None):
        self.device, self.dtype = torch.device(device), dtype or self.dtype
        self.moves.append(self.device.type)
        return self

    def __call__(self, image, digest=None):
        assert self.device == GPU, "encodes where the placement says"
        tokens = self.cache.get(digest)
        if tokens is None:
            tokens = torch.ones(5, 8)
            self.cache.put(digest, tokens)
        return tokens


def test_a_kept_tower_loads_parked_gets_room_and_waits_on_the_cpu():
    moves, rooms, loads = [], [], []

    def loader(source, device, dtype, cache_dir=None, **hooks):
        loads.append(torch.device(device).type)
        return FakeEncoder(device, dtype, moves)

    towers = VisionTowers(loader)
    placement = TowerPlacement(GPU, torch.float16, park=CPU, make_room=rooms.append)
    first, second = gradient(seed=1), gradient(seed=2)
    towers.encode("tower", [_image(first)], placement)
    assert loads == ["cpu"]  # loaded where it waits, not on the GPU
    assert rooms == [105 * 2]  # its float16 bytes, asked for before it moved
    assert moves == ["cuda", "cpu"]  # in to encode, out again
    towers.encode("tower", [_image(first)], placement)  # known image: nothing moves
    assert moves == ["cuda", "cpu"]
    towers.encode("tower", [_image(second)], placement)  # a new image: room asked again
    assert rooms == [210, 210]
    assert moves == ["cuda", "cpu", "cuda", "cpu"]
    assert loads == ["cpu"]


def test_without_a_park_the_tower_stays_as_before():
    moves, loads = [], []

    def loader(source, device, dtype, cache_dir=None, **hooks):
        loads.append(torch.device(device).type)
        return FakeEncoder(device, dtype, moves)

    towers = VisionTowers(loader)
    towers.encode("tower", [_image(gradient())], TowerPlacement(GPU, torch.float16))
    assert loads == ["cuda"]
    assert moves == []


def _image(pixels):
    return GuidanceImage.from_pil(pixels)
