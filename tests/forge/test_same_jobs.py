"""The job tests of ``tests/webui``, run again in each fake Forge (see conftest.py).

Guidance at every step, batches, AND, prompt editing, hires fix, img2img, the step window,
several images, the negative image, errors, the preview and the model families must behave
on Forge 2 and old Forge as they do on A1111. The tests are imported, not copied; the few
that are about A1111 itself are left out below.
"""

from tests.webui.test_errors import *  # noqa: F403
from tests.webui.test_families import *  # noqa: F403
from tests.webui.test_preview_panel import *  # noqa: F403
from tests.webui.test_sampling import *  # noqa: F403
from tests.webui.test_trust import *  # noqa: F403

# About A1111's own behaviour, or the A1111 fake as such:
del test_an_unrecognised_forge_is_refused_clearly  # noqa: F821 (a Forge is recognised here)
del test_s_min_uncond_skips_and_padding_keep_guided_rows  # noqa: F821 (A1111's padding)
