"""Fake ``comfy.model_management``: CPU only, and ComfyUI's interrupt flag."""

import torch

interrupt_processing = False


class InterruptProcessingException(BaseException):
    pass


def interrupt_current_processing(value=True):
    global interrupt_processing
    interrupt_processing = value


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    if interrupt_processing:
        interrupt_processing = False
        raise InterruptProcessingException()


def text_encoder_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


LOADED = []


def load_model_gpu(model):
    LOADED.append(model)
