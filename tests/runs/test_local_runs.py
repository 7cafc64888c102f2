"""Generation and evaluation runs without Ray (lfdm generate-run, lfdm eval run): the library's own path."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from lfdm.cli import main as cli
from lfdm.io import storage
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from tests.support import save_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_dataset):
    _, manifest = tiny_dataset
    return save_tiny_model(str(tmp_path_factory.mktemp("model") / "lfdm"), manifest.classes)


def test_generate_run_resumes_refuses_other_settings_and_evaluates(tmp_path, tiny_dataset, tiny_model, capsys):
    from lfdm.metrics.i3d_weights import fetch_reference
    fetch_reference(log=lambda s: None)
    root, manifest = tiny_dataset
    data, run = str(root / "manifest.parquet"), str(tmp_path / "gen")
    base = ["generate-run", "--data", data, "--out", run, "--set", f"checkpoint={tiny_model}", "num_videos=6",
            "batch_size=4", "sampler=ddim", "steps=2", "formats=[npy, npz]"]
    assert cli(base) == 0
    os.remove(os.path.join(run, "meta", "gen000004.json"))                 # as if killed before its meta file
    capsys.readouterr()
    assert cli(base) == 0
    assert "6 videos planned, 5 done, 1 to do" in capsys.readouterr().out
    rows = storage.read_parquet(os.path.join(run, "generated.parquet")).to_pylist()
    assert [r["video_id"] for r in rows] == [f"gen{i:06d}" for i in range(6)] and {r["eta"] for r in rows} == {0.0}
    with np.load(os.path.join(run, "videos", "gen000003.npz")) as npz:
        np.testing.assert_array_equal(npz["frames"], np.load(os.path.join(run, "videos", "gen000003.npy")))
        assert npz["flows"].shape == (10, 8, 8, 2) and npz["occlusions"].shape == (10, 8, 8)
    assert cli(base + ["eta=0.5"]) == 2                                     # another plan: refused, nothing mixed
    assert "another plan" in capsys.readouterr().err
    out = str(tmp_path / "eval")
    assert cli(["eval", "run", "--data", data, "--out", out, "--set", f"generated={run}", "bootstrap=3",
                "group_bootstrap=2"]) == 0
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["n_gen"] == 6 and results["n_real"] == len(manifest.split("test"))
    features = storage.read_parquet(os.path.join(out, "features.parquet")).to_pylist()
    assert len({r["protocol_hash"] for r in features}) == 1 and all(len(r["features"]) == 400 for r in features)
    assert results["protocol"]["clip_choice"].startswith("real: 1 clip(s) per test video")
    cached = sorted(os.listdir(os.path.join(out, "feature_cache")))
    assert [c.split("_")[:2] for c in cached] == [["real", results["protocol"]["hash"]],
                                                  ["reference6", results["protocol"]["hash"]]]
    cal = results["calibration"]                     # 6 training-split clips and the 6 sources held still
    assert cal["real_vs_real"]["n_gen"] == 6 and cal["static"]["n_gen"] == 6
    assert cal["static"]["kvd"] > 0 and "| calibrated |" in open(os.path.join(out, "results.md")).read()
    from lfdm.runs.motion_accuracy import run_motion_accuracy   # the classifier alone: the evaluation's accuracy
    alone = run_motion_accuracy(run)
    assert (alone["accuracy"], alone["per_class"], alone["excluded"]) == (
        results["condition_accuracy"], results["condition_accuracy_per_class"], [])
    os.remove(os.path.join(run, "meta", "gen000002.json"))
    assert run_motion_accuracy(run)["n"] == 5 and run_motion_accuracy(run)["excluded"][0].startswith("gen000002: ")


def test_real_feature_cache_key_survives_copying_the_run_and_changes_with_the_clips(tmp_path, tiny_dataset):
    import shutil

    from lfdm.metrics.fvd import FVDProtocol
    from lfdm.runs.evaluation import manifest_digest, real_cache_uri

    root, _ = tiny_dataset
    copy = tmp_path / "elsewhere" / "data"
    shutil.copytree(root, copy)
    for split in ("test", "train"):
        assert manifest_digest(str(copy / "manifest.parquet"), split) == manifest_digest(str(root / "manifest.parquet"),
                                                                                         split)
    assert manifest_digest(str(root / "manifest.parquet"), "test") != manifest_digest(str(root / "manifest.parquet"),
                                                                                      "train")
    protocol = FVDProtocol(num_frames=10, weights="i3d-test")
    assert real_cache_uri("c", protocol, str(copy / "manifest.parquet"), 64) == \
        real_cache_uri("c", protocol, str(root / "manifest.parquet"), 64)


def test_uncached_kinds_share_one_extraction_pass_with_the_features_of_separate_passes(tmp_path, tiny_dataset):
    from lfdm.metrics.i3d_weights import fetch_reference
    from lfdm.runs.evaluation import EvaluationSettings, extract_local, features_by_kind, reference_items, real_items
    from lfdm.runs.evaluation import static_items
    fetch_reference(log=lambda s: None)
    root, _ = tiny_dataset
    data = str(root / "manifest.parquet")
    extract = extract_local(data, EvaluationSettings(batch_size=2), torch.device("cpu"))(32, 10)
    passes = []

    def counted(items):
        passes.append(sorted({i["kind"] for i in items}))
        return extract(items)
    real = real_items(data, "test", 10, 1)[:3]
    sources = [{**r, "kind": "generated", "video_id": f"gen{j}", "source_frame": j} for j, r in enumerate(real)]
    wanted = {"real": (lambda: real, str(tmp_path / "real.parquet")),
              "reference": (lambda: reference_items(data, 3, 10, 1), str(tmp_path / "reference.parquet")),
              "static": (lambda: static_items(sources, 10), None)}
    tables = features_by_kind(wanted, counted, log=lambda s: None)
    assert passes == [["real", "reference", "static"]]
    for kind, (items, _) in wanted.items():
        alone = extract(items())
        assert tables[kind].column("video_id").to_pylist() == alone.column("video_id").to_pylist()
        np.testing.assert_allclose(np.asarray(tables[kind].column("features").to_pylist()),    # other clips share
                                   np.asarray(alone.column("features").to_pylist()), atol=1e-4)  # the conv batches
    again = features_by_kind(wanted, counted, log=lambda s: None)             # the real clips come from the caches
    assert passes[1:] == [["static"]] and again["real"].equals(tables["real"])


def test_static_clips_of_one_source_frame_are_extracted_once_and_equal(tiny_dataset):
    from lfdm.metrics.i3d_weights import fetch_reference
    from lfdm.runs.evaluation import EvaluationSettings, extract_local, features_by_kind, static_items
    fetch_reference(log=lambda s: None)
    root, manifest = tiny_dataset
    data = str(root / "manifest.parquet")
    source = manifest.split("test").records[0]
    generated = [{"video_id": f"gen{i:06d}", "kind": "generated", "label": label, "subject": source.subject,
                  "source_video_id": source.video_id, "source_frame": frame, "uri": "unused"}
                 for i, (label, frame) in enumerate([("move left", 0), ("zoom in", 0), ("stay still", 3)])]
    extract = extract_local(data, EvaluationSettings(), torch.device("cpu"))(32, 4)
    seen = []

    def counted(items):
        seen.extend(i["video_id"] for i in items)
        return extract(items)

    static = features_by_kind({"static": (lambda: static_items(generated, 10), None)}, counted, log=lambda s: None)
    assert seen == ["static:gen000000", "static:gen000002"]                 # frame 0 once, frame 3 once
    rows = {r["video_id"]: r for r in static["static"].to_pylist()}
    assert sorted(rows) == ["static:gen000000", "static:gen000001", "static:gen000002"]
    assert rows["static:gen000001"]["label"] == "zoom in" and rows["static:gen000001"]["kind"] == "static"
    assert rows["static:gen000001"]["features"] == rows["static:gen000000"]["features"]
    assert rows["static:gen000002"]["features"] != rows["static:gen000000"]["features"]
    alone = extract(static_items(generated[1:2], 10)).to_pylist()[0]["features"]     # as if extracted on its own
    np.testing.assert_allclose(rows["static:gen000001"]["features"], alone, rtol=1e-4, atol=1e-4)  # batch-size float noise
