"""The demo at tiny size through the same code path as `make demo`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.ray_jobs.conftest import RAY_TEST_ENV

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_demo_writes_a_consistent_report_and_reuses_stages(tmp_path, ray_tmpdir):
    out = tmp_path / "demo"
    env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": ray_tmpdir()}
    cmd = [sys.executable, "-m", "ray_jobs.demo", "--size", "tiny", "--out", str(out)]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    last_line = first.stdout.strip().splitlines()[-1]
    assert last_line == str(out / "report.html") and os.path.exists(last_line)
    results = json.loads((out / "results.json").read_text())
    evaluation = json.loads((out / "evaluate" / "results.json").read_text())
    for key in ("condition_accuracy", "fvd", "cfvd_mean", "cfvd_std", "sfvd_mean", "sfvd_std", "kvd"):
        assert results[key] == evaluation[key] and results[key] is not None, key     # the report shows the run's
    assert 0 < results["timings"]["wall (this run)"] <= results["wall_seconds"]
    assert results["wall_seconds"] >= sum(v for k, v in results["timings"].items() if k != "wall (this run)")
    assert results["fvd"] == evaluation["fvd"] and results["n_gen"] == evaluation["n_gen"] == 18
    assert results["protocol_hash"] == evaluation["protocol"]["hash"]
    html = (out / "report.html").read_text()
    cal = results["calibration"]                                 # references at the generated set's size
    assert cal == evaluation["calibration"] and cal["static"]["n_gen"] == 18 and "kvd_ratio" in cal
    assert set(results["stage1_relative_to_copy_per_class"]) == set(results["stage1_flow_magnitude_ratio_per_class"])
    assert isinstance(results["stage1_collapsed"], bool)
    ceiling = json.loads((out / "stage1_quality.json").read_text())["motion"]       # reconstructions, classified
    assert ceiling["videos"] == 9 and ceiling["frames_per_video"] == 10 and ceiling["real_accuracy"] >= 0.5
    assert results["stage1_reconstruction_accuracy_per_class"] == {k: v["accuracy"] for k, v in ceiling["per_class"].items()}
    for needle in ("Examples per class", "loss_curves.png", "cfvd_per_class.png", "condition accuracy", "Timings",
                   "Calibrated FVD / KVD", "Stage 1 per class", "reconstruction classified as its class", "flow colour saturates at",
                   "Free-text prompts never seen in training", "shift the shape leftwards", "Shape preservation"):
        assert needle in html, needle
    prompts = results["prompts"]                                 # the same plan from held-out prompts, on Ray
    generated = json.loads((out / "generate_prompts" / "meta" / "gen000000.json").read_text())
    assert generated["prompt"] == "shift the shape leftwards" and generated["label"] == "move left"
    assert prompts["n"] == 18 and 0 <= prompts["accuracy"] <= 1 and prompts["label_accuracy"] == results[
        "condition_accuracy"]
    assert set(prompts["retrieval"]) == {"class_means", "labels", "sentence_posterior"}
    assert prompts["retrieval"]["labels"]["n"] == 36 and prompts["prompt_projection"] is True
    assert "Prompt projection: On" in html and "most posterior weight on its class" in html
    shapes = results["shape_preservation"]
    assert shapes["real"]["overall"]["n"] == 9 and shapes["generated"]["overall"]["n"] <= 18
    assert shapes["stage1"]["overall"]["n"] == 9                  # the same real clips, rebuilt by stage 1
    assert "shape IoU stage-1 reconstruction" in html
    assert shapes["real"]["per_class"]["stay still"]["shape_iou"] > 0.95          # real still objects keep their shape
    gifs = sorted(p for p in (out / "examples").iterdir())
    assert len(gifs) == 9 and all(f'src="examples/{p.name}"' in html for p in gifs)
    assert (out / "loss_curves.png").stat().st_size > 1000
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert second.stdout.count("(reused)") == 11                       # every stage but the weights and report
    assert json.loads((out / "results.json").read_text())["fvd"] == results["fvd"]
