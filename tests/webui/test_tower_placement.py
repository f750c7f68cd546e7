"""Where vision towers are while a job runs (issue 12, "Memory").

On a host whose memory manager owns the GPU (Forge) room is asked for before a tower moves to
the GPU, and the tower waits on the CPU between encodings. On every host at most one tower is
on the GPU at a time (SDXL has two).

No GPU is needed: the fake encoder records where it is moved instead of moving.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from flexdiffuse.images import GuidanceImage
from flexdiffuse.webui.vision_towers import TowerPlacement, VisionTowers
from tests.webui.conftest import gradient

GPU, CPU = torch.device("cuda", 0), torch.device("cpu")


class FakeEncoder:
    def __init__(self, device, dtype, moves, name="", encodes_on=GPU):
        self.device, self.dtype, self.moves = torch.device(device), dtype, moves
        self.name, self.encodes_on = name, encodes_on
        self.model = SimpleNamespace(parameters=lambda: [torch.zeros(10, 10), torch.zeros(5)])
        self.cache = None

    def to(self, device=None, dtype=None):
        self.device, self.dtype = torch.device(device), dtype or self.dtype
        self.moves.append(f"{self.name}{self.device.type}")
        return self

    def __call__(self, image, digest=None):
        assert self.device == self.encodes_on, "encodes where the placement says"
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


def test_at_most_one_tower_is_on_the_gpu_at_a_time():
    """SDXL on A1111 with keep-loaded on: the ViT-L tower leaves before ViT-bigG arrives."""
    moves, loads = [], []

    def loader(source, device, dtype, cache_dir=None, **hooks):
        loads.append(f"{source} {torch.device(device).type}")
        return FakeEncoder(device, dtype, moves, name=f"{source} ")

    towers = VisionTowers(loader)
    placement = TowerPlacement(GPU, torch.float16)
    first, second = _image(gradient(seed=1)), _image(gradient(seed=2))
    towers.encode("vit-l", [first], placement)
    towers.encode("bigg", [first], placement)
    assert loads == ["vit-l cuda", "bigg cuda"]
    assert moves == ["vit-l cpu"]  # out before bigG loaded
    towers.encode("vit-l", [second], placement)
    towers.encode("bigg", [second], placement)
    assert moves == ["vit-l cpu", "bigg cpu", "vit-l cuda", "vit-l cpu", "bigg cuda"]
    on_gpu = [key for key in towers.loaded() if towers._encoders[key].device.type == "cuda"]
    assert len(on_gpu) == 1


def test_a_tower_on_the_current_gpu_is_not_moved_again():
    """The webui names its device ``cuda``; a tower's weights report ``cuda:0``."""
    moves, rooms = [], []

    def loader(source, device, dtype, cache_dir=None, **hooks):
        return FakeEncoder(GPU, dtype, moves)

    towers = VisionTowers(loader)
    placement = TowerPlacement(torch.device("cuda"), torch.float16, make_room=rooms.append)
    towers.encode("tower", [_image(gradient(seed=1))], placement)
    towers.encode("tower", [_image(gradient(seed=2))], placement)
    assert moves == []
    assert rooms == []


def test_towers_on_the_cpu_stay_side_by_side():
    moves = []

    def loader(source, device, dtype, cache_dir=None, **hooks):
        return FakeEncoder(device, dtype, moves, encodes_on=CPU)

    towers = VisionTowers(loader)
    placement = TowerPlacement(CPU, torch.float32)
    for source in ("vit-l", "bigg"):
        towers.encode(source, [_image(gradient())], placement)
    assert moves == []
    assert len(towers.loaded()) == 2


def _image(pixels):
    return GuidanceImage.from_pil(pixels)
