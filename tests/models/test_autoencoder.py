import json
import os

import pytest
import torch

from lfdm.models.autoencoder import LatentFlowAutoencoder, parameter_counts
from lfdm.models.blocks import AntiAliasDownsample
from lfdm.models.flow_predictor import sparse_motions
from lfdm.models.linalg2x2 import inverse2x2, symmetric_eig2x2
from lfdm.models.region import region_params
from lfdm.models.warp import coordinate_grid, warp
from lfdm.presets import get_preset

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official_keys")


def identity(b, h, w):
    return coordinate_grid(h, w).unsqueeze(0).expand(b, h, w, 2)


def test_identity_flow_leaves_latent_and_image_unchanged():
    torch.manual_seed(0)
    z, image = torch.randn(2, 16, 8, 8), torch.rand(2, 3, 32, 32)
    flow = identity(2, 8, 8)
    torch.testing.assert_close(warp(z, flow, align_corners=True), z, atol=1e-6, rtol=0)
    torch.testing.assert_close(warp(image, flow, align_corners=True), image, atol=1e-5, rtol=0)  # upsampled flow
    model = LatentFlowAutoencoder(get_preset("tiny").autoencoder).eval()
    with torch.no_grad():
        out = model.decode(model.encode(image), image, flow, torch.ones(2, 1, 8, 8))
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)   # fully visible: the source comes through


def test_known_translation_moves_content_by_expected_pixels():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 17, 21)
    dx, dy = 3, -2
    flow = identity(1, 17, 21).clone()
    flow[..., 0] += 2 * dx / (21 - 1)
    flow[..., 1] += 2 * dy / (17 - 1)
    out = warp(image, flow, align_corners=True)
    # backward flow: out(y, x) = image(y + dy, x + dx)
    torch.testing.assert_close(out[..., 2:17, 0:18], image[..., 0:15, 3:21], atol=1e-5, rtol=0)
    assert out[..., :, 18:].abs().max() == 0                    # sampled outside: zeros


def test_on_device_affine_equals_svd_reference():
    torch.manual_seed(0)
    heat = torch.softmax(torch.randn(4, 5, 16 * 16) * 3, dim=-1).view(4, 5, 16, 16)
    params = region_params(heat)
    covar = params["covar"]
    u, s, _ = torch.svd(covar.reshape(-1, 2, 2).double())
    reference = (u @ torch.diag_embed(s.sqrt())).view(4, 5, 2, 2).float()
    same = (params["affine"] - reference).abs().amax((-1, -2)) < 1e-5
    flipped = (params["affine"] + reference).abs().amax((-1, -2)) < 1e-5      # a global sign is immaterial
    assert bool((same | flipped).all())
    uu, ss = symmetric_eig2x2(covar)
    torch.testing.assert_close(uu @ torch.diag_embed(ss) @ uu.transpose(-1, -2), covar, atol=1e-7, rtol=1e-4)
    # what the flow predictor consumes is identical to the SVD-based computation
    drv = region_params(torch.softmax(torch.randn(4, 5, 256) * 3, -1).view(4, 5, 16, 16))
    bg = torch.eye(3).expand(4, 3, 3)
    ours = sparse_motions(params, drv, bg, 8, 8, revert_axis_swap=True)
    u2, s2, _ = torch.svd(drv["covar"].reshape(-1, 2, 2).double())
    ref_drv = dict(drv, affine=(u2 @ torch.diag_embed(s2.sqrt())).view(4, 5, 2, 2).float())
    theirs = sparse_motions(dict(params, affine=reference), ref_drv, bg, 8, 8, revert_axis_swap=True)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_inverse2x2():
    m = torch.randn(10, 2, 2) + 3 * torch.eye(2)
    torch.testing.assert_close(inverse2x2(m), torch.linalg.inv(m), atol=1e-5, rtol=1e-5)


def test_antialias_kernel_equals_official_buffer():
    with open(os.path.join(FIXTURES, "deterministic_buffers.json")) as f:
        ref = json.load(f)
    down = AntiAliasDownsample(3, 0.25)
    assert list(down.weight.shape) == ref["antialias_scale0.25_weight_shape"]
    assert [down.ka, down.kb] == ref["antialias_ka_kb"]
    torch.testing.assert_close(down.weight[0, 0], torch.tensor(ref["antialias_scale0.25_kernel2d"]), atol=0, rtol=0)


@pytest.mark.parametrize("size", [17, 32, 63, 64])
@pytest.mark.parametrize("scale", [0.5, 0.25, 0.125])
def test_antialias_downsample_keeps_every_stride_th_pixel_of_the_full_blur(size, scale):
    """The official module blurs at full resolution and keeps out[:, :, ::s, ::s]; ours convolves with stride s."""
    down = AntiAliasDownsample(3, scale)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    full = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (down.ka, down.kb, down.ka, down.kb)), down.weight,
                                      groups=3)
    kept = full[:, :, ::down.stride, ::down.stride]
    torch.testing.assert_close(down(x), kept, atol=1e-6, rtol=0)
    grad_kept, = torch.autograd.grad(kept.sum(), x)
    grad_ours, = torch.autograd.grad(down(x).sum(), x)
    torch.testing.assert_close(grad_ours, grad_kept, atol=1e-6, rtol=0)


def test_mug128_parameter_counts_match_official():
    counts = parameter_counts(LatentFlowAutoencoder(get_preset("mug128").autoencoder))
    assert counts["autoencoder_total"] == 66_004_557
    assert counts["region_predictor"] == 14_146_728
    assert counts["bg_predictor"] == 6_282_438
    assert counts["flow_predictor"] == 37_730_268


@pytest.mark.parametrize("preset", ["mhad128", "mug64"])
def test_shapes_of_other_presets(preset):
    cfg = get_preset(preset)
    model = LatentFlowAutoencoder(cfg.autoencoder).eval()
    x = torch.rand(1, 3, cfg.data.image_size, cfg.data.image_size)
    with torch.no_grad():
        out = model(x, x)
    latent = cfg.data.image_size // 4
    assert out["flow"].shape == (1, latent, latent, 2) and out["prediction"].shape == x.shape


def test_degenerate_regions_keep_finite_gradients():
    heat = torch.zeros(1, 3, 8, 8)
    heat[0, 0, 3, 4] = 1.0                                   # collapsed onto one pixel: covariance 0
    heat[0, 1] = 1 / 64                                      # uniform: isotropic covariance
    heat[0, 2, 2:4, 2:4] = 0.25
    heat.requires_grad_(True)
    params = region_params(heat)
    (params["affine"].sum() + inverse2x2(params["affine"]).sum()).backward()
    assert torch.isfinite(params["affine"]).all() and torch.isfinite(heat.grad).all()


@pytest.mark.parametrize("residual,scale", [(False, 1.0), (True, 1.0), (True, 4.0)])
def test_flow_target_round_trip_and_scale(residual, scale):
    from lfdm.flow_target import flow_to_target, target_to_flow
    g = torch.Generator().manual_seed(0)
    flow, occlusion = torch.rand(2, 5, 8, 8, 2, generator=g) * 2 - 1, torch.rand(2, 5, 8, 8, generator=g)
    x0 = flow_to_target(flow, occlusion, residual, scale)
    assert x0.shape == (2, 3, 5, 8, 8)
    back_flow, back_occlusion = target_to_flow(x0, residual, scale)
    torch.testing.assert_close(back_flow, flow)
    torch.testing.assert_close(back_occlusion[:, 0], occlusion)
    torch.testing.assert_close(x0[:, :2], scale * flow_to_target(flow, occlusion, residual)[:, :2])
