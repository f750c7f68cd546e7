"""The fake ComfyUI mirrors the real one: signatures, and the facts the node pack relies on.

The real tree is ComfyUI v0.33.0 from the host kit beside the checkout
(``../shared/hosts/comfyui-2f35f4a.tar.gz``), unpacked once into ``build/hosts/`` and parsed
with ``ast`` or read as text, never imported. Without the kit the tests are skipped, except
under CI (``CI=true``), where a missing kit fails them.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import subprocess
from pathlib import Path

import pytest

from tests.signatures import fake_function, fake_parameters, real_parameters

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT.parent / "shared" / "hosts"
TREE = "comfyui-2f35f4a"

# (fake module, qualified name there, real file)
SIGNATURES = [
    ("comfy_api.latest", "ComfyExtension.on_load", "comfy_api/latest/__init__.py"),
    ("comfy_api.latest", "ComfyExtension.get_node_list", "comfy_api/latest/__init__.py"),
    ("comfy_api.latest._io", "Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "Output.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "Float.Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "Boolean.Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "Combo.Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "String.Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "MultiType.Input.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "Custom", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "NodeOutput.__init__", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "ComfyNode.define_schema", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._io", "ComfyNode.execute", "comfy_api/latest/_io.py"),
    ("comfy_api.latest._ui", "PreviewImage.__init__", "comfy_api/latest/_ui.py"),
    ("comfy_api.latest._ui", "PreviewText.__init__", "comfy_api/latest/_ui.py"),
    ("comfy.utils", "ProgressBar.__init__", "comfy/utils.py"),
    ("comfy.utils", "ProgressBar.update", "comfy/utils.py"),
    ("comfy.utils", "ProgressBar.update_absolute", "comfy/utils.py"),
    (
        "comfy.model_management",
        "throw_exception_if_processing_interrupted",
        "comfy/model_management.py",
    ),
    ("comfy.model_management", "interrupt_current_processing", "comfy/model_management.py"),
    ("comfy.model_management", "load_model_gpu", "comfy/model_management.py"),
    ("comfy.model_management", "text_encoder_device", "comfy/model_management.py"),
    ("comfy.model_management", "intermediate_device", "comfy/model_management.py"),
    ("comfy.clip_vision", "ClipVisionModel.encode_image", "comfy/clip_vision.py"),
    ("comfy.sd", "CLIP.tokenize", "comfy/sd.py"),
    ("comfy.sd", "CLIP.encode_from_tokens", "comfy/sd.py"),
    ("comfy.sd", "Tokenizer.untokenize", "comfy/sd1_clip.py:SDTokenizer.untokenize"),
    ("folder_paths", "add_model_folder_path", "folder_paths.py"),
    ("folder_paths", "get_folder_paths", "folder_paths.py"),
    ("folder_paths", "get_filename_list", "folder_paths.py"),
    ("folder_paths", "get_full_path", "folder_paths.py"),
    ("folder_paths", "get_full_path_or_raise", "folder_paths.py"),
]

# What the pack reads of ComfyUI beyond signatures: (file, text in it).
FACTS = [
    # The image tokens: CLIP_VISION.model.vision_model.post_layernorm and .visual_projection,
    # applied to encode_image's last_hidden_state (taken before the post-layernorm).
    ("comfy/clip_model.py", "self.post_layernorm = operations.LayerNorm(embed_dim)"),
    ("comfy/clip_model.py", "self.vision_model = CLIPVision("),
    ("comfy/clip_model.py", "self.visual_projection = operations.Linear("),
    ("comfy/clip_vision.py", 'outputs["last_hidden_state"] = out[0]'),
    ("comfy/clip_vision.py", "self.load_device = comfy.model_management.text_encoder_device()"),
    ("comfy/clip_vision.py", "comfy.model_management.load_model_gpu(self.patcher)"),
    ("comfy/clip_vision.py", "def encode_image(self, image, crop=True):"),
    # The tower identified before encoding: its model type and config, and the identity
    # ComfyUI puts in place of a missing visual projection (which the pack refuses).
    ("comfy/clip_vision.py", 'self.model_type = config.get("model_type", "clip_vision_model")'),
    ("comfy/clip_vision.py", "self.config = config.copy()"),
    ("comfy/clip_model.py", "self.visual_projection = torch.nn.Identity()"),
    ("comfy/clip_model.py", 'if "projection_dim" in config_dict:'),
    # The tokenizer behind CLIP.tokenizer.untokenize, and its end token that pads.
    ("comfy/sd1_clip.py", "self.inv_vocab = {v: k for k, v in vocab.items()}"),
    ("comfy/sd1_clip.py", "def untokenize(self, token_weight_pair):"),
    # SDXL's ViT-bigG tokenizer pads with id 0 ("!"), not the end token.
    ("comfy/sdxl_clip.py", "super().__init__(tokenizer_path, pad_with_end=False,"),
    ("comfy/sd1_clip.py", "self.pad_token = 0"),
    # Loading: the V3 entry point only without NODE_CLASS_MAPPINGS, the module named by path.
    ("nodes.py", 'elif hasattr(module, "comfy_entrypoint"):'),
    ("nodes.py", 'sys_module_name = module_path.replace(".", "_x_")'),
    # The step window example's node, and ComfyUI's conditioning values it sets.
    ("nodes.py", '"ConditioningSetTimestepRange": ConditioningSetTimestepRange,'),
    ("comfy/model_management.py", "class InterruptProcessingException(BaseException):"),
    ("comfy_api/latest/_io.py", "class Image(ComfyTypeIO):"),
    ("comfy_api/latest/_io.py", "class ClipVision(ComfyTypeIO):"),
    ("comfy_api/latest/_ui.py", 'return {"text": (self.value,)}'),
    # The versioned API the pack imports re-exports latest's; the root __init__.py probes it.
    ("comfy_api/v0_0_2/__init__.py", "from comfy_api.latest import io, ui, IO, UI, ComfyExtension"),
    ("comfy_api/version_list.py", "ComfyAPIAdapter_v0_0_2,"),
    # What the nodes' schemas set, and what /object_info then says.
    ("comfy_api/latest/_io.py", "search_aliases: list[str] = field(default_factory=list)"),
    ("comfy_api/latest/_io.py", "is_deprecated: bool=False"),
    ("comfy_api/latest/_io.py", "deprecated=self.is_deprecated,"),
    ("comfy_api/latest/_io.py", '"advanced": self.advanced,'),
    # The execute annotations' types (the fake gives Image and Conditioning a Type too).
    ("comfy_api/latest/_io.py", "class Image(ComfyTypeIO):\n    Type = torch.Tensor"),
    ("comfy_api/latest/_io.py", "class Float(ComfyTypeIO):\n    Type = float"),
    ("comfy_api/latest/_io.py", "class Clip(ComfyTypeIO):\n    if TYPE_CHECKING:"),
    # Masks: a MASK is a tensor; Load Image's is 1 where the picture is transparent (where
    # the Mask Editor painted), and an empty 64x64 one for a picture without transparency.
    ("comfy_api/latest/_io.py", '"MASK")\nclass Mask(ComfyTypeIO):\n    Type = torch.Tensor'),
    ("nodes.py", "(1.0 - components.alpha[..., -1])"),
    ("nodes.py", "mask = 1. - torch.from_numpy(mask)"),
    ("nodes.py", 'mask = torch.zeros((64, 64), dtype=torch.float32, device="cpu")'),
    # A reference shares the image sockets: a MultiType's io types joined by ',', which the
    # prompt's validation reads as "any of these".
    ("comfy_api/latest/_io.py", 'return ",".join(list(dict.fromkeys(str_types)))'),
    ("comfy_execution/validation.py", 'set(t.strip() for t in input_type.split(","))'),
    # Saved references: the models folder, and a schema made anew for each /object_info (the
    # page's Refresh lists newly saved references).
    ("folder_paths.py", 'models_dir = os.path.join(base_path, "models")'),
    ("comfy_api/latest/_io.py", 'def FINALIZE_SCHEMA(cls):\n        """Call define_schema'),
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def source() -> Path:
    unpack = KIT / "unpack"
    if not unpack.is_file():
        message = f"no ComfyUI source to check the fakes against: no host kit at {KIT}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    dest = ROOT / "build" / "hosts" / TREE
    done = subprocess.run([str(unpack), TREE, str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{unpack} {TREE} {dest} failed:\n{done.stderr}", pytrace=False)
    return dest


def nested_functions(path: Path) -> dict[str, ast.FunctionDef]:
    """Every function of a file by qualified name, nested classes included."""
    found: dict[str, ast.FunctionDef] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found[prefix + node.name] = node
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return found


@pytest.mark.parametrize(("module", "name", "path"), SIGNATURES, ids=lambda x: str(x))
def test_fake_signatures_match_comfyuis(source, module, name, path):
    path, _, real_name = path.partition(":")
    real = nested_functions(source / path).get(real_name or name)
    assert real is not None, f"{real_name or name} not found in {path}"
    expected = real_parameters(real)
    function = fake_function(module, name)
    if inspect.ismethod(function):  # a classmethod, bound: no cls
        expected = expected[1:]
    names = [n for n, _ in expected]
    found = fake_parameters(function)
    assert names[: len(found)] == found, f"{module}.{name}: fake {found}, real {names}"
    extra = expected[len(found) :]
    assert all(has_default for _, has_default in extra), f"real {name} needs {extra}"


def test_the_fake_schema_has_the_real_fields_in_order(source):
    from comfy_api.v0_0_2 import io

    tree = ast.parse((source / "comfy_api/latest/_io.py").read_text(encoding="utf-8"))
    schema = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Schema")
    real = [n.target.id for n in schema.body if isinstance(n, ast.AnnAssign)]
    fields = [f.name for f in dataclasses.fields(io.Schema)]
    assert real[: len(fields)] == fields


@pytest.mark.parametrize(("path", "text"), FACTS, ids=lambda x: str(x)[:50])
def test_facts_the_node_pack_relies_on(source, path, text):
    assert text in (source / path).read_text(encoding="utf-8"), f"{text!r} not in {path}"


def test_the_required_comfyui_is_the_kits(source):
    """requires-comfyui names the ComfyUI the fakes are checked against and the live suite
    runs: the root __init__.py's REQUIRED_COMFYUI."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flexdiffuse_root", ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    version = (source / "comfyui_version.py").read_text(encoding="utf-8")
    assert f'__version__ = "{module.REQUIRED_COMFYUI}"' in version
