"""The guidance image's tokens: a CLIP vision tower with its projection (docs/algorithm.md)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from PIL import Image

from .checkpoints import PICKLE_SUFFIXES, convert_command
from .download import DiskFullError, DownloadHooks, DownloadStoppedError, fetch_weights
from .images import image_digest, prepare_image
from .known_towers import VIT_L
from .messages import as_sentence
from .towers import is_local_source, split_hub_source

logger = logging.getLogger(__name__)

DEFAULT_MODEL_SD1 = str(VIT_L.default_source)
"""The source of the tower that shares SD 1.x's text space (CLIP ViT-L/14, tokens 768 wide)."""

CACHE_SIZE = 8
"""Encoded images kept per cache; a guidance image is usually reused across many jobs."""


class ModelLoadError(RuntimeError):
    """The CLIP vision model could not be loaded; the message says what to do."""


class LoadStoppedError(ModelLoadError):
    """Loading was stopped on request (:class:`~flexdiffuse.download.DownloadHooks`)."""


class TokenCache:
    """A small least-recently-used map from :func:`image_digest` to image tokens.

    Kept apart from the encoder so a host can unload the vision tower and still reuse the
    encodings of images it has seen.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def get(self, key: str) -> torch.Tensor | None:
        """The tokens stored under ``key`` (now the most recent), or None."""
        tokens = self._items.get(key)
        if tokens is not None:
            self._items.move_to_end(key)
        return tokens

    def put(self, key: str, tokens: torch.Tensor) -> None:
        """Store ``tokens``, dropping the least recently used entry past :data:`CACHE_SIZE`."""
        self._items[key] = tokens
        self._items.move_to_end(key)
        while len(self._items) > CACHE_SIZE:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ImageEncoder:
    """Turns a PIL image into its image tokens (docs/algorithm.md, "Image tokens") ``[n, d]``.

    Every token of the tower's last hidden state (class token and patches) goes through the
    post-layernorm and the visual projection. Encodings are cached by image content (pass a
    :class:`TokenCache` to share or keep them beyond this encoder), so the same image is
    encoded once; returned tensors are shared and must not be modified.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: object,
        name: str,
        cache: TokenCache | None = None,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.name = name
        self.cache = TokenCache() if cache is None else cache

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL_SD1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        cache: TokenCache | None = None,
        download: DownloadHooks | None = None,
    ) -> ImageEncoder:
        """Load a CLIP vision tower from a Hugging Face id, a local folder or one file.

        Args:
            name_or_path: a Hugging Face model id (``openai/clip-vit-large-patch14``), a
                folder of a Hugging Face repo (``h94/IP-Adapter/models/image_encoder``: the
                repo id, then the folder), a local folder with ``config.json`` and
                ``model.safetensors`` (as ``save_pretrained`` writes them), or a single
                weights file (see :meth:`from_single_file`).
            device: where to run the tower (default CPU).
            dtype: its dtype (default float32).
            cache_dir: where downloads go (default: the Hugging Face cache).
            local_files_only: never touch the network.
            cache: where encodings are kept (default: a new cache of this encoder's own).
            download: follow the download of the weights (bytes done and total) and stop it
                (:func:`~flexdiffuse.download.fetch_weights` says when); without it the
                download shows on the console only.

        Only ``config.json`` and the safetensors weights are downloaded; without a
        ``preprocessor_config.json`` images get CLIP's standard preprocessing at the tower's
        input size.

        Raises:
            ModelLoadError: the model is missing, unreachable, not safetensors or not CLIP.
            LoadStoppedError: ``download.should_stop()`` said so before the tower was built.
        """
        from transformers import CLIPVisionModelWithProjection

        name = str(name_or_path).strip()
        local = Path(name).expanduser()
        if local.is_file():
            _stop_if_asked(download, name)
            return cls.from_single_file(local, device, dtype, cache=cache)
        if local.is_dir():
            name = str(local)
        _check_local_path(name)
        repo, subfolder = (name, "") if local.is_dir() else split_hub_source(name)
        offline = _offline(local_files_only)
        options = {
            "cache_dir": str(cache_dir) if cache_dir else None,
            # transformers reads the offline variables once, at import: one set later (by the
            # host, another extension, a test) must keep it off the network too.
            "local_files_only": offline,
            "subfolder": subfolder,
        }
        if download is not None and not local.is_dir() and not offline:
            try:
                fetch_weights(repo, subfolder, cache_dir, download)
            except DownloadStoppedError as error:
                raise LoadStoppedError(_stopped_message(name)) from error
            except DiskFullError as error:
                raise ModelLoadError(f"Could not download '{name}': {error.strerror}") from error
        _stop_if_asked(download, name)
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(
                repo, torch_dtype=dtype, use_safetensors=True, **options
            )
            processor = _image_processor(repo, model.config.image_size, options)
        except (OSError, ValueError) as error:
            raise ModelLoadError(_load_failure_message(name, error)) from error
        logger.info("Loaded CLIP vision model %s", name)
        return cls(model.to(device or "cpu"), processor, name, cache)

    @classmethod
    def from_single_file(
        cls,
        path: str | Path,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        cache: TokenCache | None = None,
    ) -> ImageEncoder:
        """Load a CLIP vision tower from one weights file, as IP-Adapter tools keep them.

        ``path`` is a ``.safetensors`` file (or a ``.pth``/``.bin`` pickle the user named, read
        with ``weights_only=True`` on a torch without a published bypass of it, see
        :func:`~.checkpoints.read_weights`) in transformers' or OpenCLIP's layout, a whole CLIP
        model included. The configuration comes from a ``config.json`` beside the file, else from
        the tensor shapes; images get CLIP's standard preprocessing at the tower's input size.

        Raises:
            ModelLoadError: the file is missing, unreadable, not a CLIP vision tower with a
                visual projection, or a pickle this torch cannot read safely (unopened).
        """
        from transformers import CLIPVisionModelWithProjection

        from .checkpoints import (
            CheckpointError,
            UnsafePickleError,
            read_weights,
            vision_config,
            vision_state_dict,
        )

        file = Path(path)
        try:
            state = vision_state_dict(read_weights(file))
            config = vision_config(state, _sibling_config(file))
            model = CLIPVisionModelWithProjection(config)
            missing, unexpected = model.load_state_dict(state, strict=False)
        except UnsafePickleError as error:
            raise ModelLoadError(str(error)) from error
        except CheckpointError as error:
            raise ModelLoadError(_file_failure_message(file, error)) from error
        except Exception as error:  # corrupt files fail in safetensors, pickle or torch
            detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            raise ModelLoadError(_file_failure_message(file, detail)) from error
        missing = [key for key in missing if not key.endswith("position_ids")]
        if missing or unexpected:
            names = ", ".join((missing or unexpected)[:3])
            raise ModelLoadError(
                _file_failure_message(file, f"its tensors do not fit the tower ({names}, ...)")
            )
        processor = _standard_processor(config.image_size)
        logger.info("Loaded CLIP vision model from %s", file)
        return cls(model.to(device=device or "cpu", dtype=dtype), processor, str(file), cache)

    @property
    def width(self) -> int:
        """The token width ``d`` (the projection dimension)."""
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        """Where the tower runs."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The tower's dtype."""
        return next(self.model.parameters()).dtype

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ImageEncoder:
        """Move the tower like ``Module.to``; returns self. Cached encodings stay as they are."""
        self.model.to(device=device, dtype=dtype)
        return self

    def __call__(self, image: Image.Image, digest: str | None = None) -> torch.Tensor:
        """The image tokens ``[n, d]`` of ``image`` on the tower's device and dtype.

        ``digest`` is ``image``'s :func:`image_digest` when the caller knows it already.
        """
        key = digest or image_digest(image)
        tokens = self.cache.get(key)
        if tokens is None:
            tokens = self._encode(prepare_image(image, self.model.config.image_size))
            self.cache.put(key, tokens)
        # A shared cache may hold tokens made before the tower moved.
        return tokens.to(device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def _encode(self, pixels: Image.Image) -> torch.Tensor:
        # Resizing and cropping are done by prepare_image; the processor only normalises.
        batch = self.processor(
            images=pixels, return_tensors="pt", do_resize=False, do_center_crop=False
        )
        values = batch["pixel_values"].to(device=self.device, dtype=self.dtype)
        hidden = self.model.vision_model(pixel_values=values).last_hidden_state
        tokens = self.model.visual_projection(self.model.vision_model.post_layernorm(hidden))
        return tokens[0]


SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")


def _check_local_path(name: str) -> None:
    folder = Path(name)
    if not folder.exists() and is_local_source(name):
        raise ModelLoadError(
            f"'{name}' does not exist. Give an existing folder or weights file, or a Hugging "
            f"Face model id such as '{DEFAULT_MODEL_SD1}'."
        )
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"The folder '{name}' is not a CLIP model folder: it needs config.json, "
            "model.safetensors (and optionally preprocessor_config.json), as save_pretrained "
            "writes them."
        )
    # transformers 4.30 (A1111's) falls back to pickled weights in a local folder even with
    # use_safetensors=True, and unpickling can run arbitrary code: refuse before it tries.
    if any((folder / f).is_file() for f in SAFETENSORS_FILES):
        return
    pickled = sorted(p for p in folder.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    found = f" (found {', '.join(p.name for p in pickled)})" if pickled else ""
    convert = "."  # a command ends the message: no full stop after it
    if len(pickled) == 1:
        command = convert_command(pickled[0], folder / SAFETENSORS_FILES[0])
        convert = f", or convert the pickle once, if you trust it: {command}"
    raise ModelLoadError(
        f"The folder '{name}' has no model.safetensors{found}. FlexDiffuse loads weights only "
        "from safetensors files, never from pickled .bin/.pt files, which can run code when "
        f"loaded. Download the model's model.safetensors into that folder{convert}"
    )


def _sibling_config(file: Path):
    """The vision config in a ``config.json`` beside ``file`` (heads cannot be inferred)."""
    if not (file.parent / "config.json").is_file():
        return None
    from transformers import CLIPVisionConfig

    try:
        return CLIPVisionConfig.from_pretrained(file.parent)
    except (OSError, ValueError):
        return None


def _image_processor(repo: str, image_size: int, options: dict[str, object]):
    """The source's own image processor, else CLIP's standard one at ``image_size``.

    Vision-only folders such as IP-Adapter's ``image_encoder`` hold no
    ``preprocessor_config.json``. Every released CLIP tower uses the same normalisation, and
    resizing and cropping are done by :func:`prepare_image`, so the standard processor gives
    the same pixels.
    """
    from transformers import CLIPImageProcessor

    try:
        return CLIPImageProcessor.from_pretrained(repo, **options)
    except OSError as error:  # transformers reports a missing file as OSError
        logger.debug("No image processor in %s (%s); using CLIP's standard one", repo, error)
        return _standard_processor(image_size)


def _standard_processor(size: int):
    """CLIP's preprocessing (OpenAI mean and std, bicubic) for ``size``-pixel inputs."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )


def _offline(local_files_only: bool) -> bool:
    """Whether downloads are off: by the caller, HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE."""
    if local_files_only:
        return True
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    try:
        from transformers.utils import is_offline_mode
    except ImportError:  # pragma: no cover - every supported transformers has it
        return False
    return bool(is_offline_mode())


def _stop_if_asked(download: DownloadHooks | None, name: str) -> None:
    if download is not None and download.should_stop():
        raise LoadStoppedError(_stopped_message(name))


def _stopped_message(name: str) -> str:
    return (
        f"Stopped before the CLIP vision model '{name}' was loaded, as asked. The next guided "
        "job loads it, downloading what is still missing."
    )


def _file_failure_message(file: Path, error: object) -> str:
    return (
        f"Could not load a CLIP vision model from the file '{file}': {as_sentence(error)} Use a "
        "CLIP vision tower with its projection (the image encoder file IP-Adapter uses, or a "
        "whole CLIP model) as .safetensors, or a folder saved by transformers."
    )


def _load_failure_message(name: str, error: Exception) -> str:
    detail = as_sentence(str(error).strip().splitlines()[0] if str(error).strip() else error)
    if Path(name).exists():
        return (
            f"Could not load the CLIP vision model from the folder '{name}': {detail} The folder "
            "needs config.json and model.safetensors (pickled .bin/.pt weights are not loaded), "
            "as written by save_pretrained."
        )
    repo, subfolder = split_hub_source(name)
    where = f"the folder '{subfolder}' of '{repo}'" if subfolder else f"'{repo}'"
    return (
        f"Could not load the CLIP vision model '{name}': {detail} If this machine is offline, "
        f"download config.json and model.safetensors from {where} on Hugging Face elsewhere, "
        "put them in one local folder and set the model to that folder instead."
    )
