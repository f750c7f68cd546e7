"""Fake ``folder_paths``: ComfyUI's registry of model folders, as the node pack uses it.

``models_dir`` starts in a temporary folder; tests point it (and the registered folders) at
their own ``tmp_path``. Listing is uncached: ComfyUI caches by the folders' modification
times, which gives the same lists.
"""

import os
import tempfile

models_dir = os.path.join(tempfile.gettempdir(), "fakecomfy-models")
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    if folder_name in folder_names_and_paths:
        paths = folder_names_and_paths[folder_name][0]
        if full_folder_path in paths:
            paths.remove(full_folder_path)
        paths.insert(0 if is_default else len(paths), full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name):
    paths, extensions = folder_names_and_paths[folder_name]
    found = set()
    for folder in paths:
        for root, _, files in os.walk(folder, followlinks=True):
            for name in files:
                relative = os.path.relpath(os.path.join(root, name), folder)
                if not extensions or os.path.splitext(name)[-1].lower() in extensions:
                    found.add(relative)
    return sorted(found)


def get_full_path(folder_name, filename):
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def get_full_path_or_raise(folder_name, filename):
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(
            f"Model in folder '{folder_name}' with filename '{filename}' not found."
        )
    return path
