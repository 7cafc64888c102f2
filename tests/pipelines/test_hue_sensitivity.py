"""benchmarks/hue_sensitivity.py (and the guidance sweep's digest) on a tiny real pipeline: one row per held-out source and hue, hue 0 is the
untouched frame, and the other hues change the colours but not where the object is."""
import json

import torch

from benchmarks import guidance_sweep
from benchmarks.hue_sensitivity import hue_sensitivity, source_frames, summary, table
from lfdm.data.motion_classifier import estimate_motion
from lfdm.data.synthetic import CLASSES
from lfdm.data.transforms import JitterFactors, color_jitter
from lfdm.io.pixels import to_uint8
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import get_preset


def test_each_source_at_each_hue_and_hue_zero_is_the_plain_frame(tiny_dataset):
    root, _ = tiny_dataset
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"sample.steps": 2})
    pipe = ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), list(CLASSES),
                                torch.randn(len(CLASSES), cfg.unet.text_dim))
    sources = source_frames(str(root / "manifest.parquet"), 1, 32)
    assert sorted(label for _, label, _ in sources) == sorted(CLASSES)        # one test subject, 1 video per class
    picked = sources[:2]
    rows = hue_sensitivity(pipe, picked, [0.0, 0.5], seed=5, batch_size=3)
    assert [(r["video_id"], r["hue"]) for r in rows] == [(v, h) for v, _, _ in picked for h in (0.0, 0.5)]

    _, label, image = picked[0]
    plain = pipe(image[None], [label], seeds=[5]).frames[0]                     # (3, T, S, S)
    assert rows[0]["read_as"] == estimate_motion(to_uint8(plain.permute(1, 2, 3, 0))).label_text
    turned = color_jitter(image, JitterFactors(hue=0.5))
    saturation = lambda x: x.max(0).values - x.min(0).values                   # noqa: E731
    assert not torch.allclose(turned, image, atol=0.05)                        # other colours ...
    torch.testing.assert_close(saturation(turned), saturation(image), atol=0.02, rtol=0)   # ... the same object mask
    assert "| all |" in table(rows, [0.0, 0.5])
    overall = summary(rows)["all"]                                            # the per-class digest (also the guidance sweep's)
    assert overall["n"] == 4 and overall["accuracy"] == sum(r["correct"] for r in rows) / 4


def test_guidance_sweep_measures_every_scale_and_start(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"sample.steps": 2})
    ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), list(CLASSES),
                         torch.randn(len(CLASSES), cfg.unet.text_dim)).save(str(tmp_path / "model"))
    out = tmp_path / "sweep.json"
    assert guidance_sweep.main(["--model", str(tmp_path / "model"), "--manifest", str(root / "manifest.parquet"),
                                "--out", str(out), "--guidance", "3", "--guidance-from", "0", "0.6",
                                "--videos-per-class", "1"]) == 0
    result = json.loads(out.read_text())["guidance"]
    assert sorted(result) == ["3.0", "3.0 from 0.6"]
    assert result["3.0 from 0.6"]["guidance_from"] == 0.6 and result["3.0"]["guidance_from"] == 0.0
    assert all(len(r["videos"]) == len(CLASSES) for r in result.values())     # one test subject, 1 video per class
