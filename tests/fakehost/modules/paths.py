"""Fake ``modules.paths``."""

import tempfile

models_path = tempfile.mkdtemp(prefix="fake-webui-models-")
