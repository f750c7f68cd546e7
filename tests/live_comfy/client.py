"""Just enough of ComfyUI's HTTP API for the live tests, on the standard library."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class Run:
    """A finished prompt: its ``/history`` entry."""

    prompt_id: str
    entry: dict[str, Any]

    @property
    def status(self) -> str:
        return self.entry.get("status", {}).get("status_str", "")

    @property
    def error(self) -> dict[str, Any] | None:
        """The ``execution_error`` message's data, if the run failed."""
        for kind, data in self.entry.get("status", {}).get("messages", []):
            if kind == "execution_error":
                return data
        return None

    def outputs(self, node: str) -> dict[str, Any]:
        return self.entry.get("outputs", {}).get(node, {})


class ComfyClient:
    def __init__(self, url: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.loads(response.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return response.read()

    def queue(self, prompt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /prompt: (HTTP status, body); 400 with node_errors when validation fails."""
        data = json.dumps({"prompt": prompt, "client_id": self.client_id}).encode()
        request = urllib.request.Request(
            self.url + "/prompt", data, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def run(self, prompt: dict[str, Any]) -> Run:
        """Queue ``prompt`` and wait until its ``/history`` entry is complete."""
        status, body = self.queue(prompt)
        assert status == 200, f"/prompt refused the graph ({status}): {body}"
        prompt_id = body["prompt_id"]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            status = (entry or {}).get("status", {})
            if status.get("completed") or status.get("status_str") == "error":
                return Run(prompt_id, entry)
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {self.timeout:.0f} s")

    def upload_image(self, name: str, picture: Image.Image) -> str:
        """POST /upload/image as the page's upload button does (PNG, replacing ``name``);
        returns the name LoadImage takes."""
        data = io.BytesIO()
        picture.save(data, format="PNG")
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\n'
                "true\r\n".encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode(),
                data.getvalue(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        request = urllib.request.Request(
            self.url + "/upload/image",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["name"]

    def image(self, result: dict[str, Any]) -> np.ndarray:
        """The pixels of one ``images`` entry of a run's outputs, via ``/view``."""
        query = urllib.parse.urlencode(
            {k: result[k] for k in ("filename", "subfolder", "type") if k in result}
        )
        data = self.get_bytes(f"/view?{query}")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
