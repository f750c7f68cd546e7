"""Fake ``ldm_patched.modules.model_management`` (old Forge): the memory manager that owns the GPU.

Records what FlexDiffuse asks of it; nothing is loaded, so nothing is freed.
"""

import torch

freed = []  # (memory_required, device) of every free_memory call
emptied = 0


def get_torch_device():
    return torch.device("cpu")


def minimum_inference_memory():
    return 1024 * 1024 * 1024


def free_memory(memory_required, device, keep_loaded=[]):
    freed.append((memory_required, device))


def soft_empty_cache(force=False):
    global emptied
    emptied += 1
