"""Fake ``modules.sd_models`` (Forge 2): the checkpoint loads at the first generation.

Until then ``shared.sd_model`` is a ``FakeInitialModel``; ``forge_model_reload`` loads the
selected checkpoint (here: an SD 1.x fake) and returns ``(model, just_reloaded)``.
"""

from modules import shared


class FakeInitialModel:
    def __init__(self):
        self.cond_stage_model = None
        self.chunk_length = 75


reloads = 0


def forge_model_reload():
    global reloads
    from sdmodel import FakeSdModel

    if not isinstance(shared.sd_model, FakeInitialModel):
        return shared.sd_model, False
    reloads += 1
    shared.sd_model = FakeSdModel("sd1")
    return shared.sd_model, True
