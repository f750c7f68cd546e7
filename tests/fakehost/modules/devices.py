"""Fake ``modules.devices``: a CPU-only webui in full precision."""

import contextlib

import torch

cpu: torch.device = torch.device("cpu")
device: torch.device = torch.device("cpu")
dtype: torch.dtype = torch.float32
dtype_vae: torch.dtype = torch.float32
gc_calls = 0


def torch_gc():
    global gc_calls
    gc_calls += 1


def autocast(disable=False):
    return contextlib.nullcontext()
