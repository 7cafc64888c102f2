"""Training throughput (samples/s) of both stages, and stage 2 from the flow cache vs recomputing every
clip's flows with the frozen auto-encoder at each step (what the official code does).

    python benchmarks/bench_train.py --preset demo64           # CPU
    python benchmarks/bench_train.py --preset mug128 --bf16     # GPU
    python benchmarks/bench_train.py --preset demo64 --dm-batch 4 --compile   # + stage 2 with torch.compile

Stage 2 trains on the preset's keyframes (diffusion.keyframe_stride); where the stride is above 1, one more row
times the bf16 step on every frame of the clip, as the paper does.

With --compile one more row times the stage-2 step of a torch.compile'd U-Net (Inductor; the compile itself, in
the first steps, is excluded from the row and printed beside it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Case, device_arg, run_cases  # noqa: E402

from lfdm.diffusion.keyframes import keyframe_count  # noqa: E402
from lfdm.diffusion.parameterisation import Prediction  # noqa: E402
from lfdm.diffusion.schedule import cosine_schedule  # noqa: E402
from lfdm.models.autoencoder import LatentFlowAutoencoder  # noqa: E402
from lfdm.models.unet3d import UNet3D  # noqa: E402
from lfdm.flow_target import flow_to_target  # noqa: E402
from lfdm.presets import get_preset  # noqa: E402
from lfdm.training.dm_objective import DmObjective, dm_loss  # noqa: E402
from lfdm.training.lfae_objective import LfaeObjective, lfae_loss  # noqa: E402
from lfdm.training.optim import build_optimizer, build_scheduler  # noqa: E402
from lfdm.training.steps import TrainState, train_step  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="demo64")
    p.add_argument("--device")
    p.add_argument("--lfae-batch", type=int)
    p.add_argument("--dm-batch", type=int)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="add a stage-2 row with the U-Net torch.compile'd")
    args = p.parse_args()
    device = device_arg(args.device)
    cfg = get_preset(args.preset)
    s, k = cfg.data.image_size, cfg.data.num_frames
    h = s // 2 ** cfg.autoencoder.num_down_blocks
    lb = args.lfae_batch or min(cfg.train.lfae.batch_size, 16)
    db = args.dm_batch or cfg.train.dm.batch_size

    lfae = LatentFlowAutoencoder(cfg.autoencoder)
    objective = LfaeObjective(lfae, cfg.train.lfae_loss).to(device)
    opt = build_optimizer(objective.parameters(), cfg.train.lfae)
    lstate = TrainState(objective, opt, build_scheduler(opt, cfg.train.lfae))
    pairs = {"source": torch.rand(lb, 3, s, s, device=device), "driving": torch.rand(lb, 3, s, s, device=device)}

    d = cfg.diffusion
    text_embeddings = torch.randn(4, cfg.unet.text_dim)

    def dm_state(unet: UNet3D) -> TrainState:
        """A stage-2 training state around ``unet`` (its objective, Adam and schedule)."""
        dm = DmObjective(unet, Prediction(d.prediction, cosine_schedule(d)), text_embeddings,
                         d.cond_drop_prob).to(device)
        dopt = build_optimizer(unet.parameters(), cfg.train.dm)
        return TrainState(dm, dopt, build_scheduler(dopt, cfg.train.dm))

    unet = UNet3D(cfg.unet)
    dstate = dm_state(unet)
    n = keyframe_count(k, d.keyframe_stride)                 # the frames stage 2 generates per clip
    cached = {"x0": torch.randn(db, 3, n, h, h, device=device) * 0.1,
              "z0": torch.randn(db, cfg.unet.latent_channels, h, h, device=device),
              "label": torch.randint(0, 4, (db,), device=device)}
    frozen = lfae.eval()
    videos = torch.rand(db, k, 3, s, s, device=device)

    def recompute_batch():
        with torch.no_grad():                        # the official loop: K flows per clip, every step
            src = videos[:, 0]
            flows, occs = [], []
            for j in range(0, k, d.keyframe_stride):
                f, m, _, _ = frozen.estimate_flow(src, videos[:, j])
                flows.append(f)
                occs.append(m[:, 0])
            x0 = flow_to_target(torch.stack(flows, 1), torch.stack(occs, 1), d.residual_flow, d.flow_scale)
            z0 = frozen.encode(src)[-1]
        return {"x0": x0, "z0": z0, "label": cached["label"]}

    dev = device
    step = lambda state, batch, fn, bf16=args.bf16: train_step(state, [batch], fn, noise_seed=0, device=dev,  # noqa
                                                               bf16=bf16)
    params = {"preset": cfg.name, "bf16": args.bf16, "frames": n}
    # without --bf16, one extra row puts the bf16-autocast stage-2 step beside fp32 in the same run
    bf16_row = [] if args.bf16 else [
        Case("stage 2 step, flows from the cache, bf16 autocast", lambda: step(dstate, cached, dm_loss, True), db,
             unit="sample", params={**params, "bf16": True, "batch": db})]
    every_frame = {**cached, "x0": torch.randn(db, 3, k, h, h, device=device) * 0.1}
    every_frame_row = [] if n == k else [
        Case(f"stage 2 step, flows from the cache, bf16 autocast, all {k} frames (keyframe_stride 1)",
             lambda: step(dstate, every_frame, dm_loss, True), db, unit="sample",
             params={**params, "bf16": True, "batch": db, "frames": k})]
    compile_row, notes = [], {}
    if args.compile:
        cunet = UNet3D(cfg.unet)
        cunet.load_state_dict(unet.state_dict())
        cunet.compile()
        cstate = dm_state(cunet)
        started = time.time()
        for _ in range(2):                           # compiles forward and backward
            step(cstate, cached, dm_loss, True)
        notes["compile_first_two_steps_s"] = round(time.time() - started, 1)
        print(f"torch.compile: first two steps took {notes['compile_first_two_steps_s']} s (Inductor's cache: "
              "a later process that compiles the same graphs reuses it)")
        compile_row = [Case("stage 2 step, flows from the cache, bf16 autocast, torch.compile", lambda: step(
            cstate, cached, dm_loss, True), db, unit="sample", params={**params, "bf16": True, "batch": db,
                                                                       "compiled": True})]
    run_cases(f"train_{args.preset}_{device.type}" + ("_compile" if args.compile else ""), [
        Case("stage 1 step", lambda: step(lstate, pairs, lfae_loss), lb, unit="sample", params={**params, "batch": lb}),
        Case("stage 2 step, flows from the cache", lambda: step(dstate, cached, dm_loss), db, unit="sample",
             params={**params, "batch": db}),
        *bf16_row,
        *every_frame_row,
        *compile_row,
        Case("stage 2 step, flows recomputed by the frozen LFAE", lambda: step(dstate, recompute_batch(), dm_loss), db,
             unit="sample", params={**params, "batch": db}),
    ], device, repeats=args.repeats, command="python benchmarks/bench_train.py " + " ".join(sys.argv[1:]),
       notes=notes)


if __name__ == "__main__":
    main()
