"""An imported official checkpoint runs through the Ray generation job and the Serve app."""
from __future__ import annotations

import dataclasses
import io
import json
import os

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from lfdm import label_embeddings
from lfdm.cli import main as cli
from lfdm.data.catalog import classes_for_preset
from lfdm.data.manifest import Manifest, write_manifest
from lfdm.io import storage
from lfdm.runs.generation import GenerationSettings
from tests import official_parity as P
from tests.support import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    lfae, dm, emb = str(folder / "lfae.pth"), str(folder / "dm.pth"), str(folder / "labels.safetensors")
    torch.save(P.seeded_state("lfae_mug128_detail.json"), lfae)
    torch.save(P.seeded_state("dm_mug128.json"), dm)
    labels = list(classes_for_preset("mug128"))
    label_embeddings.write(emb, label_embeddings.LabelEmbeddings(labels, torch.randn(len(labels), 768), "test"))
    out = str(folder / "model")
    assert cli(["convert", "official", "--lfae", lfae, "--dm", dm, "--preset", "mug128", "--out", out,
                "--text-embeddings", emb]) == 0
    return out


def test_generation_job_with_an_imported_checkpoint(ray_session, tmp_path, tiny_dataset, imported):
    from ray_jobs import generate
    from ray_jobs.common import GenerateJob
    _, manifest = tiny_dataset
    mug = list(classes_for_preset("mug128"))      # the synthetic clips stand in for MUG videos, with MUG's labels
    records = [dataclasses.replace(r, label_text=mug[r.label]) for r in manifest.records if r.label < len(mug)]
    data = str(tmp_path / "mug_like.parquet")
    write_manifest(Manifest(records, mug), data)
    job = GenerateJob(name="official", output=str(tmp_path), data=data, actors=1,
                      generation=GenerationSettings(checkpoint=imported, num_videos=2, batch_size=2, sampler="ddim",
                                                    steps=1))
    out = generate.run(job, log=lambda s: None)
    rows = storage.read_parquet(os.path.join(out, "generated.parquet")).to_pylist()
    assert [r["label"] for r in rows] == ["anger", "disgust"]
    video = np.load(os.path.join(out, "videos", "gen000000.npy"))
    assert video.shape == (40, 128, 128, 3) and video.dtype == np.uint8


def test_serve_app_with_an_imported_checkpoint(ray_session, imported, monkeypatch):
    from ray import serve
    from serve.app import TOKEN_ENV, build_app
    monkeypatch.setenv(TOKEN_ENV, "official-test-token")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app({"checkpoint": imported}), name="official", route_prefix="/")
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)).save(buf, "PNG")
        r = httpx.post(f"http://127.0.0.1:{port}/v1/generate", timeout=300, files={"image": ("x.png", buf.getvalue())},
                       headers={"Authorization": "Bearer official-test-token"},
                       data={"label": "surprise", "sampler": "ddim", "steps": "1", "frames": "4", "format": "npz"})
        assert r.status_code == 200, r.text
        frames = np.load(io.BytesIO(r.content))["frames"]
        assert frames.shape == (4, 128, 128, 3)
        assert json.loads(r.headers["X-LFDM-Metadata"])["label"] == "surprise"
    finally:
        serve.shutdown()

