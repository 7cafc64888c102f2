import json
import os

import pytest
import torch

from lfdm.config import DiffusionConfig
from lfdm.convert_dm import map_official_dm, rename
from lfdm.diffusion.schedule import cosine_schedule
from lfdm.models.attention import ChannelLayerNorm, RotaryEmbedding, TemporalAttention
from lfdm.models.unet3d import TemporalConv, UNet3D
from lfdm.presets import get_preset
from lfdm.checkpoint import CheckpointError, load_state_strict

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official_keys")


def tiny_inputs(cfg, b=2, k=10, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, k, size, size, generator=g), torch.randint(0, 1000, (b,), generator=g),
            torch.randn(b, cfg.text_dim, generator=g), torch.randn(b, cfg.latent_channels, size, size, generator=g))


def test_parameter_counts_match_official():
    assert sum(p.numel() for p in UNet3D(get_preset("mug128").unet).parameters()) == 42_731_203
    assert sum(p.numel() for p in UNet3D(get_preset("natops128").unet).parameters()) == 42_129_859


@pytest.mark.parametrize("top_temporal", ["attention", "conv"])
def test_shapes_gradients_and_once_per_video_z0_equals_plain_form(top_temporal):
    cfg = get_preset("tiny", {"unet.top_temporal": top_temporal}).unet
    torch.manual_seed(0)
    unet = UNet3D(cfg)
    for mixer in unet.modules():
        if isinstance(mixer, TemporalConv):     # as after a step: a zero output conv gives its norm no gradient
            torch.nn.init.normal_(mixer.conv.weight, std=0.1)
    x, t, text, z0 = tiny_inputs(cfg)
    fast = unet(x, t, text=text, z0_features=unet.encode_condition(z0), use_null=torch.tensor([False, True]))
    plain = unet.forward_concat(x, t, text=text, z0=z0, use_null=torch.tensor([False, True]))
    assert fast.shape == x.shape
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
    fast.square().mean().backward()
    dead = [n for n, p in unet.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead


def test_top_temporal_conv_replaces_attention_at_the_latent_resolution_only_and_is_off_in_paper_presets():
    for name in ("mug128", "mhad128", "natops128"):
        assert get_preset(name).unet.top_temporal == "attention"
    unet = UNet3D(get_preset("demo64", {"unet.top_temporal": "conv"}).unet)
    top = [unet.init_temporal_attn, unet.downs[0].temporal_attn, unet.ups[-1].temporal_attn]
    assert all(isinstance(m, TemporalConv) for m in top)
    coarser = [level.temporal_attn for level in (*unet.downs[1:], *unet.ups[:-1])] + [unet.mid_temporal_attn]
    assert all(isinstance(m, TemporalAttention) for m in coarser)


def test_temporal_conv_starts_as_identity_and_mixes_only_neighbouring_frames_at_one_position():
    torch.manual_seed(0)
    mixer = TemporalConv(4)
    x = torch.randn(2, 4, 7, 3, 3)
    torch.testing.assert_close(mixer(x), x)
    with torch.no_grad():
        mixer.conv.weight.normal_()
        mixer.conv.bias.normal_()
        moved = x.clone()
        moved[0, :, 3, 1, 2] += torch.randn(4)                               # one frame, one position
        change = (mixer(moved) - mixer(x)).abs().sum(dim=1)[0]              # (K, H, W)
    touched = (change > 1e-6).nonzero().tolist()
    assert sorted(touched) == [[2, 1, 2], [3, 1, 2], [4, 1, 2]]


def test_bf16_autocast_forward_matches_fp32_within_tolerance():
    """The bf16 optimisation (benchmarks/bench_denoiser.py --dtypes bf16): same function within 3 % relative L2."""
    cfg = get_preset("tiny").unet
    torch.manual_seed(0)
    unet = UNet3D(cfg).eval()
    x, t, text, z0 = tiny_inputs(cfg)
    with torch.no_grad():
        reference = unet(x, t, text=text, z0_features=unet.encode_condition(z0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = unet(x, t, text=text, z0_features=unet.encode_condition(z0)).float()
    assert float((fast - reference).norm() / reference.norm()) < 0.03


def test_channel_layer_norm_equals_the_per_position_formula():
    torch.manual_seed(0)
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.gamma.copy_(torch.rand_like(norm.gamma) + 0.5)
    x = torch.randn(2, 6, 3, 4, 5) * 3 + 1
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    out = norm(x)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(var + norm.eps) * norm.gamma, atol=1e-5, rtol=1e-5)
    assert out.is_contiguous()    # channels-last strides would reach DDP's gradient buckets


def test_learned_null_condition_is_a_parameter_and_used():
    cfg = get_preset("tiny", {"unet.learn_null_cond": True}).unet
    unet = UNet3D(cfg)
    x, t, text, z0 = tiny_inputs(cfg)
    out = unet(x, t, text=text, z0_features=unet.encode_condition(z0), use_null=torch.tensor([True, True]))
    out.sum().backward()
    assert unet.null_cond.grad is not None and unet.null_cond.grad.abs().sum() > 0
    same = unet(x, t, text=torch.randn_like(text), z0_features=unet.encode_condition(z0),
                use_null=torch.tensor([True, True]))
    torch.testing.assert_close(out, same)                       # the text is ignored under the null condition


def test_rotary_frequencies_equal_official_buffer():
    with open(os.path.join(FIXTURES, "deterministic_buffers.json")) as f:
        ref = json.load(f)["rotary_emb.freqs"]
    torch.testing.assert_close(RotaryEmbedding(32).freqs, torch.tensor(ref), atol=0, rtol=0)


def test_rotary_is_a_rotation_of_interleaved_pairs():
    rot = RotaryEmbedding(4)
    x = torch.tensor([[[1.0, 0.0, 1.0, 0.0]] * 3])               # (1, n=3, d=4)
    out = rot(x)
    angle = torch.arange(3.0)
    torch.testing.assert_close(out[0, :, 0], torch.cos(angle))
    torch.testing.assert_close(out[0, :, 1], torch.sin(angle))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


@pytest.mark.parametrize("preset,file", [("mug128", "dm_mug128.json"), ("natops128", "dm_natops128.json")])
def test_strict_official_dm_import_places_every_tensor(preset, file):
    with open(os.path.join(FIXTURES, file)) as f:
        spec = json.load(f)["diffusion"]
    cfg = get_preset(preset)
    g = torch.Generator().manual_seed(0)
    deterministic = cosine_schedule(DiffusionConfig()).official_buffers()
    with open(os.path.join(FIXTURES, "deterministic_buffers.json")) as f:
        freqs = torch.tensor(json.load(f)["rotary_emb.freqs"])
    raw = {k: deterministic[k] if k in deterministic else freqs if k.endswith("rotary_emb.freqs")
           else torch.randn(v["shape"], generator=g) for k, v in spec.items()}
    state = map_official_dm({"diffusion": raw}, cfg, file)
    unet = UNet3D(cfg.unet)
    load_state_strict(unet, state, "U-Net", file)
    ours = unet.state_dict()
    for key, value in raw.items():
        if key.startswith("denoise_fn.") and not key.endswith("rotary_emb.freqs"):   # verified, not stored
            assert torch.equal(ours[rename(key[len("denoise_fn."):])], value), key
    assert torch.equal(ours["null_cond"], raw["denoise_fn.null_cond_emb"] if preset == "natops128"
                       else torch.zeros(1, 768))
    raw["betas"] = raw["betas"] * 2
    with pytest.raises(CheckpointError, match="betas"):
        map_official_dm({"diffusion": raw}, cfg, file)
    raw["betas"] = deterministic["betas"]
    raw["denoise_fn.mid_temporal_attn.fn.fn.fn.rotary_emb.freqs"] = freqs * 2
    with pytest.raises(CheckpointError, match="rotary"):
        map_official_dm({"diffusion": raw}, cfg, file)


def test_official_mug_weights_do_not_fit_the_natops_variant():
    with open(os.path.join(FIXTURES, "dm_mug128.json")) as f:
        spec = json.load(f)["diffusion"]
    raw = {k: torch.zeros(v["shape"]) for k, v in spec.items()
           if k.startswith("denoise_fn.") and not k.endswith("rotary_emb.freqs")}
    cfg = get_preset("natops128")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_state_strict(UNet3D(cfg.unet), map_official_dm({"diffusion": raw}, cfg), "U-Net", "mug.pth")
