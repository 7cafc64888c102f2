"""A small Python client of the LFDM HTTP API.

    from serve.client import LFDMClient
    client = LFDMClient("http://127.0.0.1:8000", token=None)
    video, meta = client.generate("face.png", label="happiness", seed=3, steps=10, sampler="ddim")
    open("out.mp4", "wb").write(video)
"""
from __future__ import annotations

import json
from typing import Optional, Tuple

import httpx


class LFDMError(RuntimeError):
    def __init__(self, status: int, payload):
        self.status, self.payload = status, payload
        super().__init__(f"HTTP {status}: {payload}")


class LFDMClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", token: Optional[str] = None, timeout: float = 600):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def labels(self) -> dict:
        return self._check(self.http.get("/v1/labels")).json()

    def health(self) -> dict:
        return self._check(self.http.get("/healthz")).json()

    def generate(self, image_path: str, label: Optional[str] = None, *, format: str = "mp4", **params) -> Tuple[bytes, dict]:
        """-> (video bytes, metadata). params: prompt (free text instead of a label), sampler, steps, guidance,
        seed, frames."""
        with open(image_path, "rb") as f:
            data = {k: str(v) for k, v in {"label": label, "format": format, **params}.items() if v is not None}
            response = self._check(self.http.post("/v1/generate", files={"image": (image_path, f)}, data=data))
        if format == "json":
            body = response.json()
            return json.dumps(body["frames"]).encode(), body["metadata"]
        return response.content, json.loads(response.headers["X-LFDM-Metadata"])

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = response.text
            raise LFDMError(response.status_code, payload)
        return response
