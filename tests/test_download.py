"""Downloading a tower from a (fake, local) Hugging Face Hub: progress, stops, resumes, full disks.

``tests/fakehub.py`` serves tiny random towers in IP-Adapter's layout over HTTP on localhost;
``huggingface_hub`` and ``transformers`` download from it as from the hub. The installed hub
(the pinned 0.x, as the webuis ship) takes no bar class, so its downloads are followed on disk;
hub 1.0's ``tqdm_class`` is exercised through a stand-in of its documented behaviour.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest
import torch

from flexdiffuse import ImageEncoder, ModelLoadError, download
from flexdiffuse.download import (
    DiskFullError,
    DownloadHooks,
    DownloadStoppedError,
    fetch_weights,
    is_cached,
    takes_bar_class,
)
from flexdiffuse.encoder import LoadStoppedError
from flexdiffuse.towers import find_tower_files
from tests.conftest import save_tiny_clip
from tests.fakehub import FakeHub, serve
from tests.test_encoder import gradient

REPO, SUBFOLDER = "h94/IP-Adapter", "models/image_encoder"
SOURCE = f"{REPO}/{SUBFOLDER}"
WEIGHTS = f"{SOURCE}/model.safetensors"
CHUNK = 4096


@pytest.fixture(scope="module")
def tower_folder(tmp_path_factory):
    """A tiny tower saved as h94 saved theirs: config.json and model.safetensors only."""
    from transformers import CLIPVisionModelWithProjection

    whole = save_tiny_clip(tmp_path_factory.mktemp("whole"), projection_dim=24, seed=3)
    folder = tmp_path_factory.mktemp("image_encoder")
    CLIPVisionModelWithProjection.from_pretrained(whole).save_pretrained(
        folder, safe_serialization=True
    )
    return folder


@pytest.fixture
def hub(tower_folder, monkeypatch):
    """The fake hub serving ``tower_folder`` as h94's ViT-H folder, in small chunks."""
    import huggingface_hub.constants as constants
    import huggingface_hub.file_download as file_download

    fake = FakeHub()
    fake.add_folder(REPO, SUBFOLDER, tower_folder)
    with serve(fake):
        template = fake.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template, raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
        monkeypatch.setattr(download, "WATCH_SECONDS", 0.01)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        fake.chunk, fake.chunk_delay = CHUNK, 0.002
        yield fake


class Recorder:
    """Download hooks that record progress and stop after ``stop_after`` bytes."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.progress: list[tuple[int, int | None]] = []
        self.stop_after = stop_after

    def hooks(self) -> DownloadHooks:
        return DownloadHooks(self.on_bytes, self.should_stop)

    def on_bytes(self, done: int, total: int | None) -> None:
        self.progress.append((done, total))

    def should_stop(self) -> bool:
        done = self.progress[-1][0] if self.progress else 0
        return self.stop_after is not None and done >= self.stop_after


def installed_hub_takes_a_bar_class() -> bool:
    from huggingface_hub import hf_hub_download

    return takes_bar_class(hf_hub_download)


def test_the_pinned_hub_is_followed_on_disk():
    """huggingface_hub 0.36 (pinned, as the webuis ship 0.x) takes no bar class: if a release
    adds one, the tests below switch to it and this one says so."""
    assert not installed_hub_takes_a_bar_class()


def test_a_download_reports_its_bytes_and_loads_like_the_folder(hub, tower_folder, tmp_path):
    size = len(hub.files[WEIGHTS])
    assert size > 16 * CHUNK
    recorder = Recorder()
    encoder = ImageEncoder.from_pretrained(SOURCE, cache_dir=tmp_path, download=recorder.hooks())
    assert recorder.progress[-1] == (size, size)
    midway = [done for done, total in recorder.progress if 0 < done < size and total == size]
    assert midway, (
        "the download's progress never fired before the file was complete: huggingface_hub "
        f"no longer writes a growing {download.PARTIAL_SUFFIX} blob (see flexdiffuse/download.py)"
    )
    assert [done for done, _ in recorder.progress] == sorted(d for d, _ in recorder.progress)
    assert is_cached(REPO, SUBFOLDER, tmp_path)
    image = gradient(40, 40)
    expected = ImageEncoder.from_pretrained(tower_folder)(image)
    assert torch.equal(encoder(image), expected)
    # The weights were fetched once (by FlexDiffuse), never again by from_pretrained.
    assert len(hub.ranges(WEIGHTS)) == 1


def test_a_stop_during_a_download_stops_the_load(hub, tower_folder, tmp_path):
    """The installed hub cannot stop a file midway: the stop is honoured once it is complete,
    and the next load downloads nothing again."""
    size = len(hub.files[WEIGHTS])
    stopper = Recorder(stop_after=1)
    with pytest.raises(LoadStoppedError, match="Stopped before the CLIP vision model"):
        ImageEncoder.from_pretrained(SOURCE, cache_dir=tmp_path, download=stopper.hooks())
    assert stopper.progress[-1] == (size, size)
    assert is_cached(REPO, SUBFOLDER, tmp_path)
    encoder = ImageEncoder.from_pretrained(SOURCE, cache_dir=tmp_path, download=Recorder().hooks())
    assert len(hub.ranges(WEIGHTS)) == 1
    image = gradient(40, 40)
    assert torch.equal(encoder(image), ImageEncoder.from_pretrained(tower_folder)(image))


def hub_1_download(hub: FakeHub):
    """``hf_hub_download`` with a ``tqdm_class``, as huggingface_hub 1.0 documents it, for the
    parts FlexDiffuse uses: byte bars made of ``tqdm_class`` (updated before each chunk is
    written) and a ``.incomplete`` blob renamed when complete. It keeps and resumes a partial
    blob, as 0.x does (1.33 deletes it on a stop), so the bars' ``initial`` is exercised."""
    import urllib.request

    def hf_hub_download(repo_id, filename, *, subfolder=None, cache_dir=None, tqdm_class=None):
        name = f"{repo_id}/{subfolder}/{filename}" if subfolder else f"{repo_id}/{filename}"
        blobs = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        complete, partial = blobs / "weights", blobs / "weights.incomplete"
        if complete.exists():
            return str(complete)
        start = partial.stat().st_size if partial.exists() else 0
        url = f"{hub.url}/{repo_id}/resolve/main/{name[len(repo_id) + 1 :]}"
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"})
        total = len(hub.files[name])
        bar = tqdm_class(unit="B", total=total, initial=start, desc=filename, name="hub")
        with urllib.request.urlopen(request) as response, open(partial, "ab") as out:
            while chunk := response.read(CHUNK):
                bar.update(len(chunk))  # before writing, as hub 1.0's http_get does
                out.write(chunk)
        bar.close()
        partial.rename(complete)
        return str(complete)

    return hf_hub_download


@pytest.fixture
def hub_1(hub, monkeypatch):
    import huggingface_hub

    stand_in = hub_1_download(hub)
    assert takes_bar_class(stand_in)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", stand_in)
    return hub


def test_with_a_bar_class_every_chunk_is_reported(hub_1, tmp_path):
    size = len(hub_1.files[WEIGHTS])
    recorder = Recorder()
    fetch_weights(REPO, SUBFOLDER, tmp_path, recorder.hooks())
    assert recorder.progress[-1] == (size, size)
    assert len(recorder.progress) >= size // CHUNK  # one report per chunk
    assert [done for done, _ in recorder.progress] == sorted(d for d, _ in recorder.progress)


def test_with_a_bar_class_a_stop_leaves_nothing_trusted_and_a_resume_counts_on(hub_1, tmp_path):
    size = len(hub_1.files[WEIGHTS])
    stopper = Recorder(stop_after=size // 2)
    with pytest.raises(DownloadStoppedError):
        fetch_weights(REPO, SUBFOLDER, tmp_path, stopper.hooks())
    done = stopper.progress[-1][0]
    assert size // 2 <= done < size
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "blobs" in p.parts]
    assert [p.suffix for p in files] == [".incomplete"]
    partial = files[0].stat().st_size  # the chunk being reported when stopped is not written
    assert done - CHUNK <= partial <= done
    assert find_tower_files([tmp_path, *tmp_path.rglob("*")], 24) == []

    recorder = Recorder()
    fetch_weights(REPO, SUBFOLDER, tmp_path, recorder.hooks())
    assert hub_1.ranges(WEIGHTS)[-1] == f"bytes={partial}-"  # resumed, not restarted
    assert recorder.progress[0][0] > partial
    assert recorder.progress[-1] == (size, size)


def test_with_a_bar_class_other_threads_are_not_stopped(hub_1, tmp_path):
    """A bar updated from a download library's own thread (hf_xet) reports but never raises:
    the stop comes in the downloading thread, after it."""
    hooks = DownloadHooks(should_stop=lambda: True)
    bar_class = download._reporting_bar_class(hooks)
    errors: list[BaseException] = []

    def from_another_thread() -> None:
        try:
            bar = bar_class(unit="B", total=10, disable=True)
            bar.update(5)
            bar.close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    worker = threading.Thread(target=from_another_thread)
    worker.start()
    worker.join()
    assert errors == []
    with pytest.raises(DownloadStoppedError):
        bar_class(unit="B", total=10, disable=True).update(5)


def test_a_stop_asked_before_the_download_downloads_nothing(hub, tmp_path):
    with pytest.raises(DownloadStoppedError):
        fetch_weights(REPO, SUBFOLDER, tmp_path, DownloadHooks(should_stop=lambda: True))
    assert hub.requests == []


def test_bars_of_other_threads_are_left_alone(hub, tmp_path):
    """A download in another thread while one is watched: reported to nobody, not stopped."""
    from huggingface_hub import hf_hub_download

    other_done = threading.Event()
    errors: list[BaseException] = []

    def other_download() -> None:
        try:
            hf_hub_download(REPO, "model.safetensors", subfolder=SUBFOLDER, cache_dir=other)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            other_done.set()

    other = tmp_path / "other"
    started = []

    def stop_when_other_ran() -> bool:
        if not started:
            started.append(1)
            threading.Thread(target=other_download).start()
            other_done.wait(30)
        return False

    recorder = Recorder()
    hooks = DownloadHooks(recorder.on_bytes, stop_when_other_ran)
    fetch_weights(REPO, SUBFOLDER, tmp_path / "mine", hooks)
    assert errors == []
    assert is_cached(REPO, SUBFOLDER, other)
    size = len(hub.files[WEIGHTS])
    assert recorder.progress[-1] == (size, size)
    assert max(done for done, _ in recorder.progress) == size  # the other bar reported nothing


def test_a_full_disk_is_named(hub, tmp_path, monkeypatch):
    import huggingface_hub.file_download as file_download

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_download, "http_get", full)
    with pytest.raises(DiskFullError):
        fetch_weights(REPO, SUBFOLDER, tmp_path, DownloadHooks())
    with pytest.raises(ModelLoadError, match=r"is full\. Free some space"):
        ImageEncoder.from_pretrained(SOURCE, cache_dir=tmp_path, download=DownloadHooks())


def test_missing_sources_are_left_to_from_pretrained(hub, tmp_path):
    """No safetensors file: fetching says nothing, loading explains (as before)."""
    with pytest.raises(ModelLoadError, match="someone/nothing"):
        ImageEncoder.from_pretrained(
            "someone/nothing", cache_dir=tmp_path, download=DownloadHooks()
        )
    fetch_weights("someone/nothing", "", tmp_path, DownloadHooks())  # no error of its own


def test_offline_loads_skip_the_download(hub, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError):
        ImageEncoder.from_pretrained(
            SOURCE, cache_dir=tmp_path, local_files_only=True, download=DownloadHooks()
        )
    assert hub.requests == []
