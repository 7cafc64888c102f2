"""Region affines under turns: closed forms on analytic heatmaps (an off-centre mixture of two Gaussians).

A driving frame turned by theta about the region's mean must give the backward motion A_src A_drv^-1 = R(-theta).
The paper's axis convention can only express |theta| <= 90 deg; ``orientation="skew"`` any |theta| < 180 deg.
"""
import dataclasses
import math

import pytest
import torch

from lfdm.config import ConfigError
from lfdm.models.flow_predictor import sparse_motions, unwrap_axis_signs
from lfdm.models.linalg2x2 import inverse2x2
from lfdm.models.warp import coordinate_grid
from lfdm.presets import get_preset
from lfdm.training.equivariance import RandomTPS, equivariance_losses
from lfdm.models.region import RegionPredictor, region_params

SIZE = 64


def rotation(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def comet(points: torch.Tensor) -> torch.Tensor:
    """An elongated, lopsided density at (..., 2) points: a heavy head and a light tail along a tilted axis."""
    axis = torch.tensor([math.cos(0.4), math.sin(0.4)], dtype=points.dtype)
    head = torch.exp(-((points - 0.25 * axis) ** 2).sum(-1) / (2 * 0.04))
    tail = 0.4 * torch.exp(-((points + 0.2 * axis) ** 2).sum(-1) / (2 * 0.02))
    return head + tail


def heatmap_of(points: torch.Tensor) -> torch.Tensor:
    """(h, w, 2) sample points -> (1, 1, h, w) heatmap summing to 1."""
    density = comet(points)
    return (density / density.sum()).unsqueeze(0).unsqueeze(0)


def backward_affine(theta: float, orientation: str, revert_axis_swap: bool) -> torch.Tensor:
    grid = coordinate_grid(SIZE, SIZE, "cpu", torch.float64)
    source = region_params(heatmap_of(grid), orientation=orientation)
    # the driving frame shows the source turned by theta: its density at p is the source's at R(-theta) p
    turned = grid @ rotation(-theta).T
    driving = region_params(heatmap_of(turned), orientation=orientation)
    affine = source["affine"] @ inverse2x2(driving["affine"])
    if revert_axis_swap:
        affine = affine * torch.sign(affine[:, :, 0:1, 0:1])
    return affine[0, 0]


@pytest.mark.parametrize("degrees", [20, 60, 100, 150, -120, -170])
def test_skew_orientation_follows_turns_up_to_180_degrees(degrees):
    theta = math.radians(degrees)
    affine = backward_affine(theta, "skew", revert_axis_swap=False)
    assert torch.allclose(affine, rotation(-theta), atol=0.02), (degrees, affine)


@pytest.mark.parametrize("degrees", [20, 60])
def test_axis_orientation_agrees_within_90_degrees(degrees):
    theta = math.radians(degrees)
    assert torch.allclose(backward_affine(theta, "axis", True), rotation(-theta), atol=0.02)


@pytest.mark.parametrize("degrees", [120, -150])
def test_axis_orientation_reads_large_turns_as_the_opposite_turn(degrees):
    """The limit the skew option removes: beyond 90 deg the paper's affine turns by theta - 180 deg."""
    theta = math.radians(degrees)
    affine = backward_affine(theta, "axis", True)
    assert torch.allclose(affine, rotation(math.pi - theta), atol=0.02)


def test_skew_sparse_motion_maps_turned_points_home():
    theta = math.radians(135)
    grid = coordinate_grid(SIZE, SIZE, "cpu", torch.float64)
    src = region_params(heatmap_of(grid), orientation="skew")
    drv = region_params(heatmap_of(grid @ rotation(-theta).T), orientation="skew")
    bg = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    motion = sparse_motions(src, drv, bg, 9, 9, revert_axis_swap=False)[0, 1]      # (9, 9, 2)
    points = coordinate_grid(9, 9, "cpu", torch.float64)
    expected = (points - drv["shift"][0, 0]) @ rotation(-theta).T + src["shift"][0, 0]
    assert torch.allclose(motion, expected, atol=0.03)


def test_turned_equivariance_transform_is_satisfiable_by_both_conventions():
    """T = a pure 150 deg turn; regions of the frame seen through T, mapped back, must equal the frame's.

    The paper's loss compares axes up to their sign (``revert_axis_swap``), so turned frames constrain both
    conventions without contradiction; only the skew affine then also carries the turn into the flow."""
    theta = math.radians(150)
    transform = RandomTPS(1, 0.0, 0.0, 5, generator=torch.Generator().manual_seed(0), rotation=math.pi)
    transform.theta = torch.cat([rotation(theta).float(), torch.zeros(2, 1)], -1).unsqueeze(0)
    grid = coordinate_grid(SIZE, SIZE, "cpu", torch.float32)
    seen = transform.warp_coordinates(grid.view(1, -1, 2)).view(SIZE, SIZE, 2)
    losses = {}
    for orientation, revert in (("skew", False), ("axis", True)):
        frame = region_params(heatmap_of(grid), orientation=orientation)
        through_t = region_params(heatmap_of(seen), orientation=orientation)
        losses[orientation] = equivariance_losses(frame, through_t, transform, revert)
    for orientation in ("skew", "axis"):
        assert losses[orientation]["equivariance_shift"] < 1e-3
        assert losses[orientation]["equivariance_affine"] < 0.02


def test_equivariance_rotation_draws_angles_in_range_and_leaves_the_paper_stream_alone():
    plain = RandomTPS(256, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(3))
    again = RandomTPS(256, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(3), rotation=0.0)
    assert torch.equal(plain.theta, again.theta) and torch.equal(plain.control_params, again.control_params)
    turned = RandomTPS(256, 0.0, 0.0, 5, generator=torch.Generator().manual_seed(3), rotation=math.radians(90))
    linear = turned.theta[:, :, :2]
    angles = torch.atan2(linear[:, 1, 0], linear[:, 0, 0])
    assert torch.allclose(torch.linalg.det(linear), torch.ones(256), atol=1e-5)
    assert angles.abs().max() <= math.radians(90) + 1e-6 and angles.abs().max() > math.radians(80)


def test_skew_orientation_needs_its_flow_convention():
    with pytest.raises(ConfigError, match="revert_axis_swap"):
        get_preset("demo64", {"autoencoder.region.orientation": "skew", "autoencoder.revert_axis_swap": True})
    with pytest.raises(ConfigError, match="orientation"):
        get_preset("demo64", {"autoencoder.region.orientation": "sideways"})


def test_unwrapped_axis_signs_follow_a_turn_past_90_degrees_frame_by_frame():
    """A lopsided region turning 0 -> 170 deg in 10 deg steps: the per-frame fold reads the frames past 90 deg as
    the opposite turn; signs chosen along the video give every frame's motion its true turn."""
    grid = coordinate_grid(SIZE, SIZE, "cpu", torch.float64)
    src = region_params(heatmap_of(grid))
    turns = [math.radians(d) for d in range(0, 171, 10)]
    drv = [region_params(heatmap_of(grid @ rotation(-theta).T)) for theta in turns]
    driving = torch.cat([d["affine"] for d in drv])                                    # (T, 1, 2, 2)

    def turn_of(affine, fold):
        m = src["affine"] @ inverse2x2(affine)
        m = m * torch.sign(m[..., 0:1, 0:1]) if fold else m
        return torch.rad2deg(torch.atan2(m[..., 1, 0] - m[..., 0, 1], m[..., 0, 0] + m[..., 1, 1]))[:, 0]

    truth = -torch.tensor([math.degrees(t) for t in turns], dtype=torch.float64)       # backward motion
    assert torch.allclose(turn_of(unwrap_axis_signs(src["affine"], driving), fold=False), truth, atol=1.0)
    folded = turn_of(driving, fold=True)
    within, past = truth.abs() < 90, truth.abs() > 90                                   # at 90 deg the fold is undecided
    assert torch.allclose(folded[within], truth[within], atol=1.0)
    assert torch.allclose(folded[past], truth[past] + 180, atol=1.0)                   # read as the other way round


def test_unwrapped_flows_of_a_video_equal_the_folded_ones_within_90_degrees():
    """flows_from_source with unwrap_turns: identical flows where no frame turns past 90 deg (random tiny model:
    its regions barely move), and the option checks its convention."""
    from lfdm.models.autoencoder import LatentFlowAutoencoder
    torch.manual_seed(0)
    cfg = get_preset("tiny").autoencoder
    model = LatentFlowAutoencoder(cfg).eval()
    frames = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = [f for _, f, _ in model.flows_from_source(frames[:1], frames, 2)]
        model.cfg = dataclasses.replace(cfg, unwrap_turns=True)
        unwrapped = [f for _, f, _ in model.flows_from_source(frames[:1], frames, 2)]
    assert torch.allclose(torch.cat(plain), torch.cat(unwrapped), atol=1e-6)
    with pytest.raises(ConfigError, match="unwrap_turns"):
        get_preset("demo64", {"autoencoder.unwrap_turns": True, "autoencoder.revert_axis_swap": False})


REGRESSED = {"autoencoder.region.affine": "regressed", "autoencoder.revert_axis_swap": False}


def test_regressed_affine_starts_at_the_identity_and_pools_the_head_by_the_heatmap():
    cfg = get_preset("tiny", REGRESSED).autoencoder
    predictor = RegionPredictor(cfg).eval()
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        start = predictor(image)
        assert torch.allclose(start["affine"], torch.eye(2).expand(2, cfg.num_regions, 2, 2), atol=1e-6)
        turn = rotation(math.radians(120)).float()                     # any matrix, past the axis convention's 90 deg
        predictor.jacobian.bias.copy_(turn.flatten().repeat(cfg.num_regions))
        turned = predictor(image)
    assert torch.allclose(turned["affine"], turn.expand(2, cfg.num_regions, 2, 2), atol=1e-5)
    assert torch.equal(turned["shift"], start["shift"]) and torch.equal(turned["covar"], start["covar"])
    # the pooling: a head that varies over space gives the heatmap-weighted mean of its matrices
    with torch.no_grad():
        predictor.jacobian.weight.normal_(0, 0.1)
        out = predictor(image)
        features = predictor.predictor(predictor.down(image))
        maps = predictor.jacobian(features).view(2, cfg.num_regions, 4, *out["heatmap"].shape[-2:])
    expected = torch.einsum("bkchw,bkhw->bkc", maps, out["heatmap"]).view(2, cfg.num_regions, 2, 2)
    assert torch.allclose(out["affine"], expected, atol=1e-5)


def test_regressed_affine_turns_the_sparse_motion_through_the_whole_turn():
    """Source affine R(-135 deg), driving identity: the region's backward motion is the whole 135 deg turn."""
    theta = math.radians(135)
    shift = torch.zeros(1, 1, 2, dtype=torch.float64)
    covar = 0.05 * torch.eye(2, dtype=torch.float64).expand(1, 1, 2, 2)
    src = {"shift": shift, "covar": covar, "affine": rotation(-theta).expand(1, 1, 2, 2)}
    drv = {"shift": shift, "covar": covar, "affine": torch.eye(2, dtype=torch.float64).expand(1, 1, 2, 2)}
    bg = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    motion = sparse_motions(src, drv, bg, 9, 9, revert_axis_swap=False)[0, 1]
    points = coordinate_grid(9, 9, "cpu", torch.float64)
    assert torch.allclose(motion, points @ rotation(-theta).T, atol=1e-9)
    folded = sparse_motions(src, drv, bg, 9, 9, revert_axis_swap=True)[0, 1]   # what the axis convention would do
    assert torch.allclose(folded, points @ rotation(math.pi - theta).T, atol=1e-9)


def test_regressed_affine_needs_its_flow_convention():
    with pytest.raises(ConfigError, match="revert_axis_swap"):
        get_preset("demo64", {"autoencoder.region.affine": "regressed"})
    with pytest.raises(ConfigError, match="affine"):
        get_preset("demo64", {"autoencoder.region.affine": "learned"})


@pytest.mark.parametrize("preset", ["mug128", "mhad128", "natops128"])
def test_paper_presets_keep_the_paper_regions(preset):
    cfg = get_preset(preset)
    assert cfg.autoencoder.region.affine == "pca" and not cfg.autoencoder.unwrap_turns
    assert get_preset("demo64").autoencoder.unwrap_turns
    assert cfg.autoencoder.region.orientation == "axis" and cfg.autoencoder.revert_axis_swap
    assert cfg.train.lfae_loss.equivariance_rotation == 0.0 and cfg.train.lfae_loss.equivariance_scale == 0.0
