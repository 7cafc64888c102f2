import json
import os

import numpy as np
import pytest
import torch

from lfdm.cli import main as cli
from lfdm.data.transforms import JitterFactors
from lfdm.presets import get_preset
from lfdm import checkpoint as ckpt
from lfdm.training.dm_data import CachedClipDataset
from lfdm.training.flow_cache import FlowCacheError, load_cache, read_meta, shard_uri


@pytest.fixture(scope="module")
def tiny_lfae(tmp_path_factory, tiny_dataset):
    root, _ = tiny_dataset
    out = str(tmp_path_factory.mktemp("lfae") / "ckpt")
    assert cli(["train", "lfae", "--preset", "tiny", "--data", str(root / "manifest.parquet"), "--out", out,
                "--override", "train.lfae.steps=2"]) == 0
    return out


def test_flow_cache_precompute_resume_and_items(tmp_path, tiny_dataset, tiny_lfae):
    root, manifest = tiny_dataset
    cache = str(tmp_path / "flows")
    args = ["flows", "precompute", "--lfae", tiny_lfae, "--data", str(root / "manifest.parquet"), "--out", cache,
            "--shard-size", "4"]
    assert cli(args) == 0
    meta = read_meta(cache)
    assert meta["num_videos"] == len(manifest) and meta["num_shards"] == (len(manifest) + 3) // 4
    os.remove(shard_uri(cache, 2))                              # as if killed before this shard
    mtime = os.path.getmtime(shard_uri(cache, 0))
    assert cli(args) == 0
    assert os.path.getmtime(shard_uri(cache, 0)) == mtime and os.path.exists(shard_uri(cache, 2))
    videos = load_cache(cache, split="train")
    assert len(videos) == len(manifest.split("train"))
    v = next(iter(videos.values()))
    assert v.flow.shape == (12, 8, 8, 2) and v.occlusion.shape == (12, 8, 8) and v.z0.shape == (32, 8, 8)
    item = CachedClipDataset(list(videos.values()), get_preset("tiny").data, seed=0)[3]
    assert item["x0"].shape == (3, 10, 8, 8) and item["z0"].shape == (32, 8, 8)
    assert item["x0"][2].min() >= -1 and item["x0"][2].max() <= 1
    # the first frame's flow against itself is close to the identity grid
    identity = torch.linspace(-1, 1, 8)
    assert (item["x0"][0, 0] - identity).abs().mean() < 0.5


def test_dm_cli_train_resume_generate(tmp_path, tiny_dataset, tiny_lfae, capsys):
    root, _ = tiny_dataset
    cache = str(tmp_path / "flows")
    assert cli(["flows", "precompute", "--lfae", tiny_lfae, "--data", str(root / "manifest.parquet"),
                "--out", cache]) == 0
    out = str(tmp_path / "dm")
    base = ["train", "dm", "--preset", "tiny", "--lfae", tiny_lfae, "--flows", cache, "--out", out]
    assert cli(base + ["--override", "train.dm.steps=2", "text.phrasings=synthetic"]) == 0
    assert cli(base + ["--override", "train.dm.steps=4", "text.phrasings=synthetic"]) == 0
    assert "resuming stage 2" in capsys.readouterr().out
    loaded = ckpt.read_checkpoint(out)
    assert loaded.kind == "lfdm" and loaded.extra["step"] == 4 and loaded.extra["ema"]
    assert loaded.labels[0] == "move left" and loaded.tensors["text.embeddings"].shape == (9, 384)
    assert loaded.tensors["text.map.project"].shape == (384, 8) and loaded.config.text.phrasings == "synthetic"
    sentences, classes = loaded.tensors["text.phrasing_embeddings"], loaded.tensors["text.phrasing_classes"]
    assert sentences.shape == (90, 384) and classes.bincount().tolist() == [10] * 9   # what prompt projection uses
    assert torch.equal(sentences[classes == 0][0], loaded.tensors["text.embeddings"][0])   # the label comes first
    frame = next(p for p in (root / "videos").iterdir())
    from lfdm.io.video import read_frames
    from PIL import Image
    Image.fromarray(read_frames(str(frame), [0])[0]).save(tmp_path / "f.png")
    assert cli(["generate", "--checkpoint", out, "--image", str(tmp_path / "f.png"), "--label", "zoom in",
                "--out", str(tmp_path / "v.mp4"), "--steps", "3"]) == 0
    assert os.path.getsize(tmp_path / "v.mp4") > 0
    assert cli(["generate", "--checkpoint", out, "--image", str(tmp_path / "f.png"), "--prompt", "spin it clockwise",
                "--out", str(tmp_path / "p.mp4"), "--steps", "3"]) == 0
    assert os.path.getsize(tmp_path / "p.mp4") > 0
    capsys.readouterr()
    motion = ["eval", "motion", "--checkpoint", out, "--data", str(root / "manifest.parquet"), "--num-videos", "9",
              "--steps", "2", "--out", str(tmp_path / "motion.json")]
    assert cli(motion + ["--prompts", "held-out"]) == 0                       # sentences never trained on
    assert "condition accuracy from prompts held-out" in capsys.readouterr().out
    assert json.loads((tmp_path / "motion.json").read_text())["n"] == 9
    (tmp_path / "bad.yaml").write_text("fly away: [take off]\n")
    assert cli(motion + ["--prompts", str(tmp_path / "bad.yaml")]) == 2
    assert "['fly away'] are not among the model's labels" in capsys.readouterr().err


def test_phrasings_draw_a_sentence_of_each_clips_own_class():
    from lfdm.diffusion.parameterisation import Prediction
    from lfdm.diffusion.schedule import cosine_schedule
    from lfdm.models.unet3d import UNet3D
    from lfdm.training.dm_objective import DmObjective
    cfg = get_preset("tiny")
    labels = torch.randn(3, cfg.unet.text_dim)
    classes = torch.tensor([0, 1, 1, 2, 2, 2, 0])                       # sentences 0..6 of classes 0, 1, 2
    sentences = torch.randn(7, cfg.unet.text_dim)
    objective = DmObjective(UNet3D(cfg.unet), Prediction("x0", cosine_schedule(cfg.diffusion)), labels, 0.1,
                            phrasings=(sentences, classes))
    label = torch.tensor([0, 1, 2] * 200)
    drawn = objective._sentences(label, torch.Generator().manual_seed(0))          # (600, D)
    which = (drawn[:, None] == sentences[None]).all(-1).float().argmax(1)             # the sentence of each row
    assert torch.equal(classes[which], label)                                         # always its own class
    assert set(which.tolist()) == set(range(7))                                       # every sentence drawn
    single = DmObjective(UNet3D(cfg.unet), Prediction("x0", cosine_schedule(cfg.diffusion)), labels, 0.1,
                         phrasings=(labels, torch.arange(3)))
    assert not single.phrasings                               # one sentence per class: the label path, no draws


def test_condition_noise_lies_in_the_class_subspace_with_the_stated_spread():
    from lfdm.config import ConfigError
    from lfdm.diffusion.parameterisation import Prediction
    from lfdm.diffusion.schedule import cosine_schedule
    from lfdm.models.text import TextConditions
    from lfdm.models.text_map import TextMap
    from lfdm.models.unet3d import UNet3D
    from lfdm.training.dm_objective import DmObjective
    cfg = get_preset("tiny")
    gen = torch.Generator().manual_seed(0)
    classes = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    raw = torch.randn(3, cfg.unet.text_dim, generator=gen)[classes] + 0.1 * torch.randn(9, cfg.unet.text_dim,
                                                                                        generator=gen)
    text_map = TextMap.fit(raw, classes)
    sentences = text_map(raw)
    conditions = TextConditions(["a", "b", "c"], sentences[[0, 3, 6]], sentences, classes, text_map)
    directions, std = conditions.condition_noise(0.25)
    means = torch.stack([sentences[classes == c].mean(0) for c in range(3)])
    spacing = torch.cdist(means, means)[torch.triu_indices(3, 3, 1).unbind()]
    assert directions.shape == (2, cfg.unet.text_dim)                         # 3 classes span a plane
    assert std == pytest.approx(0.25 * float(spacing.mean()), rel=1e-5)
    assert conditions.condition_noise(0.0) is None

    def objective(noise):
        return DmObjective(UNet3D(cfg.unet), Prediction("x0", cosine_schedule(cfg.diffusion)), sentences[[0, 3, 6]],
                           0.1, phrasings=(sentences, classes), condition_noise=noise)
    label = torch.tensor([0, 1, 2] * 2000)
    clean = objective(None).conditions(label, torch.Generator().manual_seed(1))
    noisy = objective((directions, std)).conditions(label, torch.Generator().manual_seed(1))
    offset = (noisy - clean).double()                                         # the same sentences drawn, plus noise
    in_plane = offset @ directions.double().T                                 # (6000, 2) coordinates in the subspace
    torch.testing.assert_close(in_plane @ directions.double(), offset, atol=1e-4, rtol=0)   # nothing outside it
    assert in_plane.std(0).tolist() == pytest.approx([std, std], rel=0.05)
    assert in_plane.mean(0).abs().max() < 0.05 * std
    labels_only = DmObjective(UNet3D(cfg.unet), Prediction("x0", cosine_schedule(cfg.diffusion)),
                              sentences[[0, 3, 6]], 0.1)
    untouched = torch.Generator().manual_seed(1)
    assert torch.equal(labels_only.conditions(label[:3], untouched), sentences[[0, 3, 6]])
    assert torch.equal(untouched.get_state(), torch.Generator().manual_seed(1).get_state())  # no draw: runs unchanged
    for preset in ("mug128", "mhad128", "natops128"):
        assert get_preset(preset).text.condition_noise == 0.0
    with pytest.raises(ConfigError, match="text.whiten"):
        get_preset("mug128", {"text.condition_noise": 0.1})
    with pytest.raises(ConfigError, match=">= 0"):
        get_preset("demo64", {"text.condition_noise": -0.1})


def test_stage2_colour_jitter_draws_any_hue_in_demo64_and_the_official_range_in_the_paper_presets():
    """demo64 re-encodes frame 0 at a hue drawn over the whole colour circle (an unseen subject's colours must not
    decide its motion); the paper presets keep the official +-0.04. The flow target is never jittered."""
    from lfdm.diffusion.parameterisation import Prediction
    from lfdm.diffusion.schedule import cosine_schedule
    from lfdm.models.autoencoder import ImageEncoder
    from lfdm.models.unet3d import UNet3D
    from lfdm.training.dm_objective import DmObjective
    for preset in ("mug128", "mhad128", "natops128"):
        data = get_preset(preset).data
        assert data.clip_color_jitter and data.clip_jitter.hue == 0.04
    demo = get_preset("demo64").data
    assert demo.clip_color_jitter and demo.clip_jitter.hue == 0.5
    cfg = get_preset("tiny", {"data.clip_color_jitter": True, "data.clip_jitter.hue": 0.5})
    torch.manual_seed(0)
    objective = DmObjective(UNet3D(cfg.unet), Prediction("x0", cosine_schedule(cfg.diffusion)),
                            torch.randn(3, cfg.unet.text_dim), 0.1, encoder=ImageEncoder(cfg.autoencoder),
                            jitter=cfg.data.clip_jitter)
    frame0 = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    frame0[:, 0, 8:24, 8:24] = 220                                          # a red square on black
    plain = objective.encoder(frame0.float() / 255)[-1]
    z0s = torch.cat([objective._jittered_z0(frame0, [seed]) for seed in range(2)])     # (2, C, h, w)
    assert not torch.allclose(z0s[0], plain[0]) and not torch.allclose(z0s[0], z0s[1])
    hues = [JitterFactors.draw(np.random.default_rng(seed), 0, 0, 0, demo.clip_jitter.hue).hue for seed in range(400)]
    assert min(hues) < -0.45 and max(hues) > 0.45                         # the whole circle, both ways


def test_dm_refuses_a_cache_of_another_lfae(tmp_path, tiny_dataset, tiny_lfae):
    root, _ = tiny_dataset
    cache = str(tmp_path / "flows")
    assert cli(["flows", "precompute", "--lfae", tiny_lfae, "--data", str(root / "manifest.parquet"),
                "--out", cache]) == 0
    other = str(tmp_path / "other_lfae")
    assert cli(["train", "lfae", "--preset", "tiny", "--data", str(root / "manifest.parquet"), "--out", other,
                "--override", "train.lfae.steps=1", "train.lfae.seed=3"]) == 0
    from lfdm.training.dm_stage import label_conditions
    with pytest.raises(FlowCacheError, match="another auto-encoder"):
        label_conditions(get_preset("tiny"), other, cache)
    assert cli(["train", "dm", "--preset", "tiny", "--lfae", other, "--flows", cache, "--out", str(tmp_path / "dm")]) == 2
    with pytest.raises(FlowCacheError, match="another auto-encoder"):
        from lfdm.training.flow_cache import precompute_local
        precompute_local(other, str(root / "manifest.parquet"), cache)


def test_motion_balance_weighs_each_class_by_its_flow_energy_and_is_off_in_the_paper_presets():
    from lfdm.diffusion.losses import diffusion_loss
    from lfdm.diffusion.parameterisation import Prediction
    from lfdm.diffusion.schedule import cosine_schedule
    from lfdm.models.warp import coordinate_grid
    from lfdm.training.dm_data import motion_balance_weights
    from lfdm.training.flow_cache import VideoFlows

    for name in ("mug128", "mhad128", "natops128"):
        assert get_preset(name).diffusion.motion_balance == 0.0
    identity = coordinate_grid(4, 4).numpy()

    def video(label, shift):                      # residual flow = shift everywhere: energy shift^2 per channel pair
        flow = np.broadcast_to(identity + np.array([shift, 0.0], np.float32), (3, 4, 4, 2)).copy()
        return VideoFlows(f"v{label}{shift}", label, str(label), "s0", "train", flow, np.ones((3, 4, 4), np.float16),
                          np.zeros((2, 4, 4), np.float16), np.zeros((8, 8, 3), np.uint8))

    videos = [video(0, 0.4), video(1, 0.1), video(1, 0.1), video(2, 0.0)]
    weights = motion_balance_weights(videos, 4, 0.5, residual_flow=True, flow_scale=2.0)
    energies = np.array([(2 * 0.4) ** 2 / 2, (2 * 0.1) ** 2 / 2, 0.0])       # mean over both flow channels
    expected = np.clip((energies.mean() / np.maximum(energies, 1e-12)) ** 0.5, 0.25, 4.0)
    np.testing.assert_allclose(weights[:3].numpy(), expected, rtol=1e-5)
    assert weights[3] == 1.0                      # a class with no clips keeps weight 1

    prediction = Prediction("x0", cosine_schedule(get_preset("tiny").diffusion))
    x0 = torch.randn(3, 3, 2, 4, 4)
    network = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731   predicts x0 = 0: the loss is each clip's mean square
    per_clip = x0.pow(2).flatten(1).mean(1)
    w = torch.tensor([0.5, 2.0, 1.0])
    loss = diffusion_loss(network, x0, prediction, generator=torch.Generator().manual_seed(0), sample_weights=w)
    torch.testing.assert_close(loss, (per_clip * w).mean())
