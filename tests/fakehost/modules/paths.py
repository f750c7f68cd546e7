"""Fake ``modules.paths``: the webui's folders (a fresh temporary webui per test session;
the ``webui`` fixture moves them into each test's own folder)."""

import os
import tempfile

data_path = tempfile.mkdtemp(prefix="fake-webui-")
script_path = data_path
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
