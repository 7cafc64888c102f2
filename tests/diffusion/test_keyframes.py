"""Stage 2 at a lower frame rate (diffusion.keyframe_stride): keyframes, their interpolation, and where a stride
reaches the data, the pipeline, the config and the server."""
import dataclasses

import numpy as np
import pytest
import torch

from lfdm.config import ConfigError
from lfdm.diffusion.keyframes import interpolate_keyframes, keyframe_count
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import PRESETS, get_preset
from lfdm.training.dm_data import CachedClipDataset
from lfdm.training.flow_cache import VideoFlows


def test_keyframe_count_keeps_the_first_and_last_frame():
    assert keyframe_count(16, 1) == 16 and keyframe_count(16, 3) == 6 and keyframe_count(16, 5) == 4
    assert keyframe_count(1, 4) == 1
    with pytest.raises(ValueError, match="num_frames - 1 must be a multiple of the stride .*13 or 17 frames"):
        keyframe_count(16, 4)
    with pytest.raises(ValueError, match="must be >= 1"):
        keyframe_count(16, 0)


def test_a_motion_linear_in_time_is_restored_exactly_and_keyframes_are_kept():
    stride, n = 5, 4
    time = torch.arange((n - 1) * stride + 1, dtype=torch.float64)                     # (K,)
    start, speed = torch.randn(2, 3, 1, 6, 6, dtype=torch.float64), torch.randn(2, 3, 1, 6, 6, dtype=torch.float64)
    full = start + speed * time[:, None, None]                                         # (B, C, K, h, w)
    keyframes = full[:, :, ::stride]
    assert keyframes.shape[2] == n
    torch.testing.assert_close(interpolate_keyframes(keyframes, stride), full)
    anything = torch.randn(1, 3, n, 4, 4)
    torch.testing.assert_close(interpolate_keyframes(anything, stride)[:, :, ::stride], anything)
    assert interpolate_keyframes(anything, 1) is anything
    # halfway between two keyframes: their mean
    torch.testing.assert_close(interpolate_keyframes(anything, 2)[:, :, 1], (anything[:, :, 0] + anything[:, :, 1]) / 2)


def test_paper_presets_generate_every_frame_and_bad_strides_are_config_errors():
    for name in ("mug128", "mhad128", "natops128", "mug64", "mhad64", "natops64"):
        assert PRESETS[name]().diffusion.keyframe_stride == 1
    assert get_preset("tiny", {"diffusion.keyframe_stride": 3}).diffusion.keyframe_stride == 3      # 10 frames
    with pytest.raises(ConfigError, match=r"diffusion.keyframe_stride=2, data.num_frames=10: .*multiple"):
        get_preset("tiny", {"diffusion.keyframe_stride": 2})


def test_training_items_are_the_clips_keyframes():
    rng = np.random.default_rng(0)
    videos = [VideoFlows(video_id=str(i), label=i % 2, label_text="", subject="s", split="train",
                         flow=rng.normal(size=(24, 4, 4, 2)).astype(np.float32),
                         occlusion=rng.uniform(size=(24, 4, 4)).astype(np.float32),
                         z0=np.zeros((8, 4, 4), np.float32), frame0=np.zeros((16, 16, 3), np.uint8))
              for i in range(3)]
    data = dataclasses.replace(get_preset("demo64").data, num_frames=16)
    every = CachedClipDataset(videos, data, seed=7)
    keyed = CachedClipDataset(videos, data, seed=7, keyframe_stride=5)
    for index in range(3):
        full, key = every[index]["x0"], keyed[index]["x0"]
        assert full.shape[1] == 16 and key.shape[1] == 4
        torch.testing.assert_close(key, full[:, ::5])
    with pytest.raises(ValueError, match="stride 4"):
        CachedClipDataset(videos, data, keyframe_stride=4)


def test_pipeline_samples_keyframes_and_returns_every_frame():
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"diffusion.keyframe_stride": 3})
    pipe = ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), ["a", "b"],
                                torch.randn(2, cfg.unet.text_dim))
    out = pipe(torch.rand(2, 3, 32, 32), ["a", "b"], seeds=[1, 2], sampler="ddim", steps=2)
    assert out.frames.shape == (2, 3, 10, 32, 32) and out.flows.shape == (2, 10, 8, 8, 2)
    torch.testing.assert_close(out.flows[:, 1], out.flows[:, 0] * 2 / 3 + out.flows[:, 3] / 3)
    torch.testing.assert_close(out.occlusions[:, :, 8], out.occlusions[:, :, 6] / 3 + out.occlusions[:, :, 9] * 2 / 3)
    assert not torch.allclose(out.flows[:, 3], out.flows[:, 6])
    with pytest.raises(ValueError, match="9 frames has no keyframes at stride 3"):
        pipe(torch.rand(1, 3, 32, 32), ["a"], seeds=[1], sampler="ddim", steps=2, num_frames=9)
    with pytest.raises(ConfigError, match="keyframe_stride=3, data.num_frames=12"):
        pipe.with_overrides({"data.num_frames": 12})
