"""A tiny stand-in for the Hugging Face Hub's file server, on localhost.

It answers what ``huggingface_hub.hf_hub_download`` asks (a HEAD for the commit, ETag and size,
then a GET, with ``Range`` to resume) for the files it is given, so downloads, their progress,
stops and resumes are tested without a network. Written from the hub's documented headers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "c0ffee" + "0" * 34


@dataclass
class FakeHub:
    """Files by ``"owner/repo/path/in/repo"``; ``requests`` logs (method, path, Range)."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""
    chunk: int = 4096
    chunk_delay: float = 0.0
    """Seconds between two chunks of a body, so a download takes long enough to be watched."""

    def add_folder(self, repo: str, subfolder: str, folder: Path) -> None:
        """Serve every file of ``folder`` as ``subfolder`` of ``repo``."""
        for file in folder.iterdir():
            if file.is_file():
                name = f"{subfolder}/{file.name}" if subfolder else file.name
                self.files[f"{repo}/{name}"] = file.read_bytes()

    def ranges(self, name: str) -> list[str | None]:
        """The Range headers of the GETs of the file ``name``."""
        return [rng for method, path, rng in self.requests if method == "GET" and path == name]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            del format, args

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            # /{owner}/{repo}/resolve/{revision}/{path}
            parts = unquote(self.path.split("?")[0]).strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                self._missing("RepoNotFound")
                return
            name = "/".join(parts[:2] + parts[4:])
            hub.requests.append((self.command, name, self.headers.get("Range")))
            data = hub.files.get(name)
            if data is None:
                self._missing("EntryNotFound")
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes="):
                start = int(wanted[len("bytes=") :].split("-")[0])
            self.send_response(206 if start else 200)
            digest = hashlib.sha256(data).hexdigest()
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                for offset in range(start, len(data), hub.chunk):
                    try:
                        self.wfile.write(data[offset : offset + hub.chunk])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):  # the client stopped
                        return
                    time.sleep(hub.chunk_delay)

        def _missing(self, code: str) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", "not found")
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Serve ``hub`` on a free localhost port while inside; ``hub.url`` is its address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
