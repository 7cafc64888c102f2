import json
import math
import os

import pytest
import torch

from lfdm.cli import main as cli
from lfdm.convert import LFAE_PREFIXES, map_official_lfae
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.presets import get_preset
from lfdm.config import ConfigError
from lfdm import checkpoint as ckpt
from lfdm.training.equivariance import RandomTPS, equivariance_losses
from lfdm.training.lfae_objective import LfaeObjective
from lfdm.training.optim import build_optimizer, build_scheduler
from lfdm.training.lfae_objective import lfae_loss
from lfdm.training.lfae_stage import build_lfae_stage
from lfdm.training.run import LocalHooks, run_stage, step_checkpoints
from lfdm.training.steps import TrainState, train_step

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official_keys")


def tiny_batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(n, 3, size, size, generator=g)
    return {"source": src, "driving": torch.roll(src, shifts=2, dims=-1)}


def test_equivariance_losses_vanish_for_identity_transform():
    torch.manual_seed(0)
    model = LatentFlowAutoencoder(get_preset("tiny").autoencoder).eval()
    frame = torch.rand(2, 3, 32, 32)
    t = RandomTPS(2, 0.0, 0.0, 5)
    with torch.no_grad():
        regions = model.region_predictor(frame)
        transformed = model.region_predictor(t.transform_frame(frame, align_corners=True))
    losses = equivariance_losses(regions, transformed, t, revert_axis_swap=True)
    assert losses["equivariance_shift"] < 1e-5 and losses["equivariance_affine"] < 1e-4


def test_tps_kernel_is_euclidean():
    t = RandomTPS(1, 0.0, 0.0, 5)
    t.control_params = torch.zeros(1, 1, 25)
    t.control_params[0, 0, 12] = 1.0                         # only the centre control point (0, 0)
    p = torch.tensor([[[0.3, 0.4]]])                          # Euclidean r = 0.5 (L1 would be 0.7)
    shift = t.warp_coordinates(p) - p
    expected = 0.25 * torch.log(torch.tensor(0.5 + 1e-6))
    torch.testing.assert_close(shift, expected.expand(1, 1, 2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("overrides", [{}, {"autoencoder.region.affine": "regressed",
                                             "autoencoder.revert_axis_swap": False}])
def test_gradients_reach_every_trainable_parameter(overrides):
    torch.manual_seed(0)
    cfg = get_preset("tiny", overrides)
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)
    # The background predictor's last layer starts at zero (identity affine, as the official init), so its
    # encoder receives gradients from the second step on: take one step first.
    opt = build_optimizer(objective.parameters(), cfg.train.lfae)
    train_step(TrainState(objective, opt, build_scheduler(opt, cfg.train.lfae)), [tiny_batch(seed=1)], lfae_loss,
               noise_seed=0, device=torch.device("cpu"))
    objective.zero_grad()
    out = objective(**tiny_batch(), generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    dead = [n for n, p in objective.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead


def test_decoder_only_trains_only_the_decoder():
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss, decoder_only=True)
    before = {k: v.clone() for k, v in objective.model.state_dict().items()}
    opt = build_optimizer(objective.parameters(), cfg.train.lfae)
    state = TrainState(objective, opt, build_scheduler(opt, cfg.train.lfae))
    train_step(state, [tiny_batch()], lfae_loss, noise_seed=0, device=torch.device("cpu"))
    after = objective.model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"decoder"}


def test_cpu_bf16_step_keeps_fp32_weights_and_matches_fp32_loss():
    cfg = get_preset("tiny")
    losses, grads = {}, {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)
        opt = build_optimizer(objective.parameters(), cfg.train.lfae)
        state = TrainState(objective, opt, build_scheduler(opt, cfg.train.lfae))
        losses[bf16] = train_step(state, [tiny_batch()], lfae_loss, noise_seed=0, device=torch.device("cpu"),
                                  bf16=bf16)["reconstruction"]
        assert all(p.dtype == torch.float32 for p in objective.parameters())
        grads[bf16] = torch.cat([p.grad.flatten() for p in objective.parameters() if p.grad is not None])
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    assert torch.isfinite(grads[True]).all()
    assert torch.nn.functional.cosine_similarity(grads[True], grads[False], dim=0) > 0.9


def test_one_batch_can_be_overfit():
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"train.lfae.lr": 3e-3})
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)
    opt = build_optimizer(objective.parameters(), cfg.train.lfae)
    state = TrainState(objective, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    batch = tiny_batch()
    first = train_step(state, [batch], lfae_loss, noise_seed=0, device=torch.device("cpu"))["reconstruction"]
    for step in range(450):          # the init favours the background motion: a few hundred steps
        last = train_step(state, [batch], lfae_loss, noise_seed=step, device=torch.device("cpu"))["reconstruction"]
    assert last < 0.35 * first, (first, last)


def _official_random_state():
    with open(os.path.join(FIXTURES, "lfae_mug128_detail.json")) as f:
        spec = json.load(f)
    g = torch.Generator().manual_seed(0)
    raw = {}
    for top, entries in spec.items():
        raw[top] = {}
        for name, info in entries.items():
            dtype = torch.int64 if info["dtype"] == "int64" else torch.float32
            raw[top][name] = (torch.randint(0, 100, info["shape"], generator=g, dtype=dtype) if dtype == torch.int64
                              else torch.randn(info["shape"], generator=g))
    return raw


def test_official_lfae_import_puts_every_tensor_in_place(tmp_path):
    raw = _official_random_state()
    path = str(tmp_path / "official.pth")
    torch.save(raw, path)
    assert cli(["convert", "official", "--lfae", path, "--preset", "mug128", "--out", str(tmp_path / "ck")]) == 0
    model, loaded = ckpt.load_lfae(str(tmp_path / "ck"), preset="mug128")
    assert loaded.config.autoencoder.align_corners is False          # the official convention
    ours = model.state_dict()
    placed = 0
    for top, entries in raw.items():
        for name, tensor in entries.items():
            key = f"{top}.{name}"
            new = next(n + key[len(o):] for o, n in LFAE_PREFIXES if key.startswith(o))
            assert torch.equal(ours[new], tensor), key
            placed += 1
    assert placed == len(ours) == 196 + 73 + 37


def test_official_import_rejects_leftovers_and_gaps():
    raw = _official_random_state()
    raw["generator"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(ckpt.CheckpointError, match="no place"):
        map_official_lfae(raw)
    raw = _official_random_state()
    del raw["bg_predictor"]["fc.bias"]
    model = LatentFlowAutoencoder(get_preset("mug128").autoencoder)
    with pytest.raises(ckpt.CheckpointError, match="missing"):
        ckpt.load_state_strict(model, map_official_lfae(raw), "official LFAE", "x.pth")
    with pytest.raises(ckpt.CheckpointError, match="not an official LFAE"):
        map_official_lfae({"state_dict": {}})


def test_checkpoint_roundtrip_and_mismatched_preset(tmp_path):
    cfg = get_preset("tiny")
    model = LatentFlowAutoencoder(cfg.autoencoder)
    ckpt.save_checkpoint(str(tmp_path / "c"), cfg, ckpt.with_prefix("lfae.", model.state_dict()), kind="lfae")
    loaded, _ = ckpt.load_lfae(str(tmp_path / "c"), preset="tiny")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ckpt.CheckpointError, match="preset 'tiny', not 'demo64'"):
        ckpt.load_lfae(str(tmp_path / "c"), preset="demo64")
    other = LatentFlowAutoencoder(get_preset("demo64").autoencoder)
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.load_state_strict(other, ckpt.read_checkpoint(str(tmp_path / "c")).subset("lfae."), "auto-encoder", "c")
    os.remove(tmp_path / "c" / "config.json")
    with pytest.raises(ckpt.CheckpointError, match="incomplete"):
        ckpt.read_checkpoint(str(tmp_path / "c"))


def test_a_folder_whose_upload_stopped_midway_is_not_a_checkpoint(tmp_path):
    """Ray copies a step folder to S3 in any order; a kill can leave config.json without the weights."""
    from lfdm.training.run import step_checkpoints, step_dir_name
    cfg = get_preset("tiny")
    model = LatentFlowAutoencoder(cfg.autoencoder)
    for step in (2, 4):
        ckpt.save_checkpoint(str(tmp_path / step_dir_name(step)), cfg, ckpt.with_prefix("lfae.", model.state_dict()),
                             kind="lfae", trainer_state={"step": step})
    assert [os.path.basename(u) for u in step_checkpoints(str(tmp_path))] == ["step_0000002", "step_0000004"]
    os.remove(tmp_path / "step_0000004" / ckpt.TRAINER)
    assert ckpt.exists(str(tmp_path / "step_0000004"))                   # a model, but not a resumable step
    assert [os.path.basename(u) for u in step_checkpoints(str(tmp_path))] == ["step_0000002"]
    os.remove(tmp_path / "step_0000002" / ckpt.WEIGHTS)
    assert not ckpt.exists(str(tmp_path / "step_0000002")) and step_checkpoints(str(tmp_path)) == []


def test_cli_train_resume_and_eval_recon(tmp_path, tiny_dataset, capsys):
    root, _ = tiny_dataset
    manifest = str(root / "manifest.parquet")
    out = str(tmp_path / "lfae")
    assert cli(["train", "lfae", "--preset", "tiny", "--data", manifest, "--out", out,
                "--override", "train.lfae.steps=3", "train.lfae.checkpoint_every=2"]) == 0
    assert ckpt.exists(out) and [os.path.basename(u) for u in step_checkpoints(os.path.join(out, "train"))] \
        == ["step_0000002", "step_0000003"]
    assert cli(["train", "lfae", "--preset", "tiny", "--data", manifest, "--out", out,
                "--override", "train.lfae.steps=5", "train.lfae.checkpoint_every=2"]) == 0
    captured = capsys.readouterr().out
    assert "resuming stage 1" in captured and "step=5" in captured and "step=1 " not in captured.split("resuming")[1]
    assert cli(["eval", "recon", "--checkpoint", out, "--data", manifest, "--split", "test"]) == 0
    result = json.load(open(os.path.join(out, "recon_test.json")))
    assert result["videos"] == 9 and result["frames"] == 9 * 40 and 0 < result["copy_source_l1"] < 1
    assert "copy-the-source baseline" in capsys.readouterr().out
    assert cli(["eval", "recon", "--checkpoint", out, "--data", manifest, "--split", "train", "--motion"]) == 0
    motion = json.load(open(os.path.join(out, "recon_train.json")))["motion"]
    assert motion["split"] == "train" and motion["videos"] == 18 and len(motion["per_class"]) == 9
    assert "rotate clockwise" in capsys.readouterr().out
    assert cli(["eval", "recon", "--checkpoint", out, "--data", manifest, "--split", "test", "--motion",
                "--unwrap-turns", "--out", str(tmp_path / "unwrapped.json")]) == 0
    assert json.load(open(tmp_path / "unwrapped.json"))["motion"]["videos"] == 9
    capsys.readouterr()
    assert cli(["model", "info", "--preset", "mug128"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"]["autoencoder_total"] == 66_004_557


def test_logged_flow_displacement_is_in_image_pixels():
    from lfdm.models.warp import coordinate_grid
    from lfdm.training.lfae_objective import mean_displacement_px
    identity = coordinate_grid(16, 16).expand(2, 16, 16, 2)
    assert mean_displacement_px(identity, 64) == 0
    shifted = identity + torch.tensor([3 * 2 / 63, 4 * 2 / 63])     # 3 px right, 4 px down at 64 px
    assert mean_displacement_px(shifted, 64) == pytest.approx(5.0, rel=1e-5)
    out = LfaeObjective(LatentFlowAutoencoder(get_preset("tiny").autoencoder), get_preset("tiny").train.lfae_loss)(
        *tiny_batch().values())
    assert out["flow_px"] >= 0 and not out["flow_px"].requires_grad


def test_warp_loss_scores_the_flow_alone_and_is_off_in_the_paper_presets():
    """The source warped by the flow (no decoder, no occlusion) against the driving frame, at the flow's size."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"train.lfae_loss.warp_weight": 2.0})
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)
    out = objective(*tiny_batch().values())
    flow_params = list(objective.model.flow_predictor.mask.parameters())
    grads = torch.autograd.grad(out["warp"], flow_params + list(objective.model.decoder.parameters()),
                                allow_unused=True)
    assert torch.isfinite(out["warp"]) and out["warp"] > 0
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:len(flow_params)])     # reaches the motion mask
    assert all(g is None for g in grads[len(flow_params):])                               # and not the decoder
    for preset in ("mug128", "mhad128", "natops128"):
        assert get_preset(preset).train.lfae_loss.warp_weight == 0.0


def test_warp_loss_at_image_resolution_compares_full_size_frames():
    from lfdm.models.warp import warp
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"train.lfae_loss.warp_weight": 2.0, "train.lfae_loss.warp_resolution": "image"})
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss).eval()
    batch = tiny_batch()
    with torch.no_grad():
        out = objective(*batch.values())
        flow = objective.model.estimate_flow(batch["source"], batch["driving"])[0]           # (B, h, w, 2)
    assert flow.shape[1] < batch["source"].shape[2]                                         # a coarser flow
    expected = 2.0 * (warp(batch["source"], flow, cfg.autoencoder.align_corners) - batch["driving"]).abs().mean()
    torch.testing.assert_close(out["warp"], expected)
    with pytest.raises(ConfigError, match="warp_resolution"):
        get_preset("tiny", {"train.lfae_loss.warp_resolution": "latent"})


def test_equivariance_rotation_ramps_with_training_progress(tmp_path, tiny_dataset):
    def objective(**loss):
        cfg = get_preset("tiny", {f"train.lfae_loss.{k}": v for k, v in loss.items()})
        return LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)

    ramped = objective(equivariance_rotation=90.0, equivariance_rotation_ramp=(0.2, 0.6))
    angles = []
    for progress in (0.0, 0.19, 0.4, 0.6, 0.9):
        ramped.set_progress(progress)
        angles.append(math.degrees(ramped.equivariance_angle()))
    assert angles == pytest.approx([0.0, 0.0, 45.0, 90.0, 90.0])
    at_once = objective(equivariance_rotation=90.0)
    at_once.set_progress(0.0)
    assert math.degrees(at_once.equivariance_angle()) == pytest.approx(90.0)
    assert objective().equivariance_angle() == 0.0                      # the paper's: no rotation at all
    with pytest.raises(ConfigError, match="equivariance_rotation_ramp"):
        get_preset("tiny", {"train.lfae_loss.equivariance_rotation_ramp": (0.6, 0.2)})
    # the training loop tells the objective where it is: after 4 steps it last heard step 3 of 4
    root, _ = tiny_dataset
    cfg = get_preset("tiny", {"train.lfae.steps": 4, "train.lfae_loss.equivariance_rotation": 90.0,
                              "train.lfae_loss.equivariance_rotation_ramp": (0.5, 1.0)})
    stage = build_lfae_stage(cfg, str(root / "manifest.parquet"), torch.device("cpu"))
    seen = []
    stage.objective.set_progress = lambda fraction, inner=stage.objective.set_progress: (seen.append(fraction),
                                                                                         inner(fraction))
    run_stage(stage, LocalHooks(torch.device("cpu")), str(tmp_path / "run"), str(tmp_path / "out"), log=lambda s: None)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_equivariance_scale_ramps_and_draws_isotropic_zooms_in_range():
    cfg = get_preset("tiny", {"train.lfae_loss.equivariance_scale": 0.5,
                              "train.lfae_loss.equivariance_scale_ramp": (0.5, 1.0)})
    ramped = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss)
    scales = []
    for progress in (0.0, 0.5, 0.75, 1.0):
        ramped.set_progress(progress)
        scales.append(ramped.equivariance_log_scale())
    assert scales == pytest.approx([0.0, 0.0, 0.25, 0.5])
    assert LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), get_preset("tiny").train.lfae_loss) \
        .equivariance_log_scale() == 0.0                                  # the paper's: no zoom at all
    turned = RandomTPS(512, 0.0, 0.0, 5, generator=torch.Generator().manual_seed(3), rotation=1.0)
    zoomed = RandomTPS(512, 0.0, 0.0, 5, generator=torch.Generator().manual_seed(3), rotation=1.0, log_scale=0.5)
    linear = zoomed.theta[:, :, :2]
    log_scale = 0.5 * torch.log(torch.linalg.det(linear))
    assert log_scale.abs().max() <= 0.5 + 1e-5 and log_scale.abs().max() > 0.45    # uniform in [-0.5, 0.5]
    # the same turns as without the zoom (drawn first), each scaled isotropically
    torch.testing.assert_close(linear, turned.theta[:, :, :2] * torch.exp(log_scale)[:, None, None])
    with pytest.raises(ConfigError, match="equivariance_scale"):
        get_preset("tiny", {"train.lfae_loss.equivariance_scale": -0.1})
    with pytest.raises(ConfigError, match="equivariance_scale_ramp"):
        get_preset("tiny", {"train.lfae_loss.equivariance_scale_ramp": (0.6, 0.2)})


def test_occlusion_ramp_hides_the_occlusion_map_from_the_decoder_until_it_starts():
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"train.lfae_loss.occlusion_ramp": (0.25, 0.75)})
    objective = LfaeObjective(LatentFlowAutoencoder(cfg.autoencoder), cfg.train.lfae_loss).eval()
    model, batch = objective.model, tiny_batch()
    head = list(model.flow_predictor.occlusion.parameters())
    with torch.no_grad():
        skips = model.encode(batch["source"])
        flow, occlusion, _, _ = model.estimate_flow(batch["source"], batch["driving"])
    assert occlusion.min() < 0.999                                       # the map would change the frame

    def prediction_and_head_grads(progress):
        objective.set_progress(progress)
        out = objective(*batch.values())
        grads = torch.autograd.grad(out["reconstruction"], head, allow_unused=True)
        return out["prediction"].detach(), grads
    before, grads = prediction_and_head_grads(0.2)
    torch.testing.assert_close(before, model.decode(skips, batch["source"], flow, torch.ones_like(occlusion)))
    assert all(g is None or g.abs().sum() == 0 for g in grads)           # nothing trains the map's head yet
    halfway, _ = prediction_and_head_grads(0.5)
    torch.testing.assert_close(halfway, model.decode(skips, batch["source"], flow, 1 - 0.5 * (1 - occlusion)))
    after, grads = prediction_and_head_grads(0.8)
    with torch.no_grad():
        torch.testing.assert_close(after, model(batch["source"], batch["driving"])["prediction"])
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    for preset in ("mug128", "mhad128", "natops128"):                   # the paper's: the map from the first step
        assert get_preset(preset).train.lfae_loss.occlusion_ramp == (0.0, 0.0)
    with pytest.raises(ConfigError, match="occlusion_ramp"):
        get_preset("tiny", {"train.lfae_loss.occlusion_ramp": (0.6, 0.2)})
