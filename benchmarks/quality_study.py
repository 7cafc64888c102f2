"""Why does the demo miss rotations? Stage-1 and stage-2 variants of `demo64` on the demo's dataset, measured per class.

Per variant: stage 1 (the demo's steps unless the variant says otherwise), its reconstruction against the
copy-the-source baseline and its flow against the true motion (``lfdm.runs.flow_fidelity``) on the test
split; with ``--stage2``, the flow cache, stage 2 and condition accuracy of generated videos (motion
classifier, held-out subjects, the demo's sampler). Variants run as parallel processes (one GPU holds
them all). Stage 2 needs the labels' raw text embeddings as a file (``lfdm text embed --preset demo64``),
so a machine without the text encoder can run it.

    python benchmarks/quality_study.py --out /tmp/study --variants base skew --device cuda --stage2 \
        --text-embeddings demo64_labels.safetensors
Writes OUT/quality_study.json and OUT/quality_study.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

DEMO_STEPS = {"train.lfae.steps": 900, "train.dm.steps": 1500}        # the demo's counts when this study ran
SKEW = {"autoencoder.region.orientation": "skew", "autoencoder.revert_axis_swap": False}
VARIANTS = {
    "base": {},
    "base_3x": {"train.lfae.steps": 2700},
    "skew": SKEW,
    "skew_eqrot": {**SKEW, "train.lfae_loss.equivariance_rotation": 180.0},
    "skew_eqrot_seed1": {**SKEW, "train.lfae_loss.equivariance_rotation": 180.0, "train.lfae.seed": 1},
    "skew_eqrot_r8": {**SKEW, "train.lfae_loss.equivariance_rotation": 180.0, "autoencoder.num_regions": 8},
    "skew_eqrot_r8_3x": {**SKEW, "train.lfae_loss.equivariance_rotation": 180.0, "autoencoder.num_regions": 8,
                         "train.lfae.steps": 2700},
    "r8": {"autoencoder.num_regions": 8},
    "base_seed1": {"train.lfae.seed": 1},
    "base_seed2": {"train.lfae.seed": 2},
    "base_lr5e-4": {"train.lfae.lr": 5e-4},
    "skew_seed1": {**SKEW, "train.lfae.seed": 1},
    "skew_lr5e-4": {**SKEW, "train.lfae.lr": 5e-4},
    "r8_lr5e-4": {"autoencoder.num_regions": 8, "train.lfae.lr": 5e-4},
    "eqrot": {"train.lfae_loss.equivariance_rotation": 180.0},
    "eqrot_lr5e-4": {"train.lfae_loss.equivariance_rotation": 180.0, "train.lfae.lr": 5e-4},
    "prior0": {"autoencoder.flow.background_prior": 0.0},
    "prior0_seed1": {"autoencoder.flow.background_prior": 0.0, "train.lfae.seed": 1},
    "prior0_seed2": {"autoencoder.flow.background_prior": 0.0, "train.lfae.seed": 2},
    "warp1": {"train.lfae_loss.warp_weight": 1.0},
    "warp1_seed1": {"train.lfae_loss.warp_weight": 1.0, "train.lfae.seed": 1},
    "prior0_warp1": {"autoencoder.flow.background_prior": 0.0, "train.lfae_loss.warp_weight": 1.0},
    "warp100": {"train.lfae_loss.warp_weight": 100.0},
    "prior0_seed1_warp100": {"autoencoder.flow.background_prior": 0.0, "train.lfae.seed": 1,
                             "train.lfae_loss.warp_weight": 100.0},
    "r8_seed1": {"autoencoder.num_regions": 8, "train.lfae.seed": 1},
    "warpimg_seed1": {"train.lfae_loss.warp_resolution": "image", "train.lfae.seed": 1},
    "eqrot_seed1": {"train.lfae_loss.equivariance_rotation": 180.0, "train.lfae.seed": 1},
    "eqrot45_seed1": {"train.lfae_loss.equivariance_rotation": 45.0, "train.lfae.seed": 1},
    "eqrot90_ramp_seed1": {"train.lfae_loss.equivariance_rotation": 90.0, "train.lfae.seed": 1,
                           "train.lfae_loss.equivariance_rotation_ramp": (0.2, 0.6)},
    "eqrot60_ramp_seed1": {"train.lfae_loss.equivariance_rotation": 60.0, "train.lfae.seed": 1,
                           "train.lfae_loss.equivariance_rotation_ramp": (0.2, 0.6)},
    "eqrot30_ramp_seed1": {"train.lfae_loss.equivariance_rotation": 30.0, "train.lfae.seed": 1,
                           "train.lfae_loss.equivariance_rotation_ramp": (0.2, 0.6)},
    "eqrot60_late_seed1": {"train.lfae_loss.equivariance_rotation": 60.0, "train.lfae.seed": 1,
                           "train.lfae_loss.equivariance_rotation_ramp": (0.5, 0.8)},
    "eqrot60_scale04_late_seed1": {"train.lfae_loss.equivariance_rotation": 60.0, "train.lfae.seed": 1,
                                   "train.lfae_loss.equivariance_rotation_ramp": (0.5, 0.8),
                                   "train.lfae_loss.equivariance_scale": 0.4,
                                   "train.lfae_loss.equivariance_scale_ramp": (0.5, 0.8)},
    "eqscale04_late_seed1": {"train.lfae.seed": 1, "train.lfae_loss.equivariance_scale": 0.4,
                             "train.lfae_loss.equivariance_scale_ramp": (0.5, 0.8)},
    "skew_eqrot_r8_dm2x": {**SKEW, "train.lfae_loss.equivariance_rotation": 180.0, "autoencoder.num_regions": 8,
                           "train.dm.steps": 3000},
}


def run_variant(name: str, args) -> dict:
    import torch
    from lfdm.checkpoint import load_lfae
    from lfdm.data.synthetic import CLASSES
    from lfdm.label_embeddings import read as read_embeddings
    from lfdm.models.text import TextConditions
    from lfdm.models.text_map import TextMap
    from lfdm.pipelines.image_to_video import ImageToVideoPipeline
    from lfdm.presets import get_preset
    from lfdm.runs.flow_fidelity import evaluate_flow_fidelity
    from lfdm.runs.motion_accuracy import evaluate_motion
    from lfdm.runs.reconstruction import autoencoder_reconstruct, evaluate_reconstruction
    from lfdm.runs.reconstruction_motion import evaluate_reconstruction_motion
    from lfdm.runs.shape_preservation import real_shapes, summarise
    from lfdm.training.dm_stage import build_dm_stage
    from lfdm.training.flow_cache import precompute_local
    from lfdm.training.lfae_stage import build_lfae_stage
    from lfdm.training.run import LocalHooks, run_stage

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = {k: max(2, round(v * args.scale)) for k, v in {**DEMO_STEPS, **VARIANTS[name]}.items() if k in DEMO_STEPS}
    cfg = get_preset("demo64", {"train.lfae.log_every": 100, "train.dm.log_every": 100, "text.phrasings": "",
                                **VARIANTS[name], **steps})
    out, manifest = os.path.join(args.out, name), os.path.join(args.out, "data", "manifest.parquet")
    result, log = {"variant": name, "overrides": VARIANTS[name]}, (lambda line: print(f"[{name}] {line}", flush=True))
    start = time.time()
    run_stage(build_lfae_stage(cfg, manifest, device), LocalHooks(device), os.path.join(out, "lfae_run"),
              os.path.join(out, "lfae"), log=log)
    result["stage1_seconds"] = time.time() - start
    lfae, _ = load_lfae(os.path.join(out, "lfae"), device=device)
    recon = evaluate_reconstruction(lfae, manifest, image_size=cfg.data.image_size, device=device, progress=False)
    result["reconstruction"] = {k: recon[k] for k in ("lfae_l1", "copy_source_l1", "relative_to_copy", "per_class")}
    result["flow_fidelity"] = evaluate_flow_fidelity(lfae, manifest, device=device)["per_class"]
    result["reconstruction_motion"] = evaluate_reconstruction_motion(
        autoencoder_reconstruct(lfae), manifest, num_frames=cfg.data.num_frames, image_size=cfg.data.image_size)
    shapes = real_shapes(manifest, cfg.data.num_frames, cfg.data.image_size, lfae)
    result["shape"] = {kind: summarise(rows)["per_class"] for kind, rows in shapes.items()}
    if args.stage2:
        start = time.time()
        flows = os.path.join(out, "flows")
        precompute_local(os.path.join(out, "lfae"), manifest, flows, device=str(device), progress=False)
        raw = read_embeddings(args.text_embeddings).check(CLASSES, cfg.unet.text_dim, args.text_embeddings).embeddings
        text_map = TextMap.fit(raw, range(len(CLASSES))) if cfg.text.whiten else None   # labels only: no phrasings
        emb = text_map(raw) if text_map else raw
        conditions = TextConditions(list(CLASSES), emb, emb, torch.arange(len(CLASSES)), text_map)
        stage = build_dm_stage(cfg, os.path.join(out, "lfae"), flows, device, conditions=conditions)
        run_stage(stage, LocalHooks(device), os.path.join(out, "dm_run"), os.path.join(out, "dm"), log=log)
        result["stage2_seconds"] = time.time() - start
        pipe = ImageToVideoPipeline.load(os.path.join(out, "dm"), device=device)
        result["motion"] = evaluate_motion(pipe, manifest, num_videos=args.num_videos, progress=False)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def table(results: list) -> str:
    from lfdm.data.synthetic import CLASSES
    short = [c.replace("rotate ", "rot ").replace("counterclockwise", "ccw").replace("clockwise", "cw") for c in CLASSES]
    lines = []
    none = lambda r: None  # noqa: E731
    for title, cell, overall in (
        ("stage-1 reconstruction L1 / copy-the-source L1 (test split; lower is better)",
         lambda r, c: r["reconstruction"]["per_class"].get(c, {}).get("relative_to_copy"),
         lambda r: r["reconstruction"]["relative_to_copy"]),
        ("stage-1 flow magnitude / true motion on the object (1 = the whole motion)",
         lambda r, c: r["flow_fidelity"].get(c, {}).get("magnitude_ratio"), none),
        ("stage-1 flow end-point error, pixels", lambda r, c: r["flow_fidelity"].get(c, {}).get("endpoint_error_px"),
         none),
        ("condition accuracy of stage-1 reconstructions of real test clips (what a perfect stage 2 reaches)",
         lambda r, c: (r.get("reconstruction_motion") or {}).get("per_class", {}).get(c, {}).get("accuracy"),
         lambda r: (r.get("reconstruction_motion") or {}).get("accuracy")),
        ("motion of stage-1 reconstructions / the real clips' (1 = all of it)",
         lambda r, c: (r.get("reconstruction_motion") or {}).get("per_class", {}).get(c, {}).get("motion_ratio"), none),
        ("shape IoU of stage-1 reconstructions of real test clips (lfdm.runs.shape_preservation; real clips ~0.9)",
         lambda r, c: r.get("shape", {}).get("stage1", {}).get(c, {}).get("shape_iou"), none),
        ("condition accuracy of generated videos (held-out subjects)",
         lambda r, c: (r.get("motion") or {}).get("per_class", {}).get(c, {}).get("accuracy"),
         lambda r: (r.get("motion") or {}).get("accuracy")),
    ):
        lines += [f"\n### {title}\n", "| variant | " + " | ".join(short) + " | all |",
                  "|---" * (len(short) + 2) + "|"]
        for r in results:
            cells, total = [cell(r, c) for c in CLASSES], overall(r)
            lines.append(f"| {r['variant']} | " + " | ".join("—" if v is None else f"{v:.2f}" for v in cells)
                         + f" | {'—' if total is None else f'{total:.2f}'} |")
    lines.append("\n| variant | stage 1 s | stage 2 s |\n|---|---|---|")
    lines += [f"| {r['variant']} | {r['stage1_seconds']:.0f} | {r.get('stage2_seconds', 0):.0f} |" for r in results]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=sorted(VARIANTS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--stage2", action="store_true")
    p.add_argument("--text-embeddings", help="raw label embeddings of the synthetic classes (needed by --stage2)")
    p.add_argument("--num-videos", type=int, default=72)
    p.add_argument("--parallel", type=int, default=1, help="variants at once")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per variant")
    p.add_argument("--size", choices=["demo", "tiny"], default="demo", help="tiny: 3 subjects, 1 video per class")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every variant's training steps (smoke runs)")
    p.add_argument("--data-seed", type=int, default=0, help="the dataset's draw (`lfdm demo --seed N` renders draw N)")
    p.add_argument("--only", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage2 and not args.text_embeddings:
        p.error("--stage2 needs --text-embeddings")
    if args.only:
        run_variant(args.only, args)
        return 0
    from lfdm.data.synthetic import DEMO_SPEC, write_synthetic_dataset
    spec = dataclasses.replace(DEMO_SPEC, seed=args.data_seed)
    spec = spec if args.size == "demo" else dataclasses.replace(spec, num_subjects=3, test_subjects=1, videos_per_class=1)
    write_synthetic_dataset(os.path.join(args.out, "data"), spec, progress=False)
    child = ["--out", args.out, "--device", args.device, "--num-videos", str(args.num_videos), "--threads",
             str(args.threads), "--scale", str(args.scale)]
    child += ["--stage2", "--text-embeddings", args.text_embeddings] if args.stage2 else []
    pending, running, done = list(args.variants), [], []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            os.makedirs(os.path.join(args.out, name), exist_ok=True)
            log = open(os.path.join(args.out, name, "log.txt"), "w")
            running.append((name, subprocess.Popen([sys.executable, __file__, *child, "--only", name],
                                                   stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(2)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            done.append(item[0])
            print(f"{item[0]}: exit {item[1].returncode}", flush=True)
    results = []
    for name in args.variants:
        path = os.path.join(args.out, name, "result.json")
        if os.path.exists(path):
            results.append(json.load(open(path)))
        else:
            print(f"{name} failed; its log:\n" + open(os.path.join(args.out, name, "log.txt")).read()[-3000:])
    with open(os.path.join(args.out, "quality_study.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = table(results)
    with open(os.path.join(args.out, "quality_study.md"), "w") as f:
        f.write(md)
    print(md)
    return 0 if len(results) == len(args.variants) else 1


if __name__ == "__main__":
    sys.exit(main())
