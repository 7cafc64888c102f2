"""Sweep over checkpoints x samplers x steps x guidance (paper Table 6):
``python -m ray_jobs.sweep --config ray_jobs/configs/demo_sweep.yaml``.

Every cell is a generation run plus an evaluation that shares the cached real-video statistics;
cells already computed are reused. Output: sweep.json, sweep.md and a plot of FVD against sampler
steps with seconds per video beside it.
"""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np

from lfdm.checkpoint import read_info
from lfdm.diffusion.samplers import check_sampler
from lfdm.io import storage
from lfdm.io.figures import pyplot, save_figure
from lfdm.metrics.summary import fmt_number
from lfdm.runs.generation import GENERATED
from ray_jobs import evaluate, generate
from ray_jobs.common import EvaluateJob, GenerateJob, SweepJob, job_argparser, load_job_config


def cells(job):
    sw = job.sweep
    for c, checkpoint in enumerate(sw.checkpoints):
        for sampler in sw.samplers:
            for steps in sw.steps:
                for guidance in sw.guidance:
                    yield c, checkpoint, sampler, steps, guidance


def run(job: SweepJob, log=print) -> list:
    if not job.sweep.checkpoints:
        raise ValueError("sweep.checkpoints is empty")
    rows = []
    cache = job.evaluation.feature_cache or storage.join(job.run_uri, "feature_cache")
    base = dict(output=job.output, address=job.address, use_gpu=job.use_gpu, actors=job.actors, data=job.data)
    for c, checkpoint, sampler, steps, guidance in cells(job):
        timesteps = read_info(checkpoint).config.diffusion.timesteps
        try:
            check_sampler(sampler, steps, timesteps)
        except ValueError as exc:
            log(f"skipping {sampler} with {steps} steps: {exc}")
            continue
        cell = f"ckpt{c}_{sampler}_{steps}_g{guidance:g}"
        gen_job = GenerateJob(name=f"{job.name}/{cell}/generate", **base, generation=dataclasses.replace(
            job.generation, checkpoint=checkpoint, sampler=sampler, steps=steps, guidance=guidance))
        generated = generate.run(gen_job, log)
        eval_job = EvaluateJob(name=f"{job.name}/{cell}/evaluate", **base, evaluation=dataclasses.replace(
            job.evaluation, generated=generated, feature_cache=cache))
        results_uri = storage.join(eval_job.run_uri, "results.json")
        results = (json.loads(storage.read_text(results_uri)) if storage.exists(results_uri)
                   else evaluate.run(eval_job, log))
        seconds = [r["seconds"] for r in storage.read_parquet(storage.join(generated, GENERATED)).to_pylist()]
        rows.append({"checkpoint": checkpoint, "sampler": sampler, "steps": steps, "guidance": guidance,
                     "fvd": results["fvd"], "fvd_interval": results.get("fvd_interval"), "kvd": results["kvd"],
                     "cfvd_mean": results.get("cfvd_mean"), "sfvd_mean": results.get("sfvd_mean"),
                     "condition_accuracy": results.get("condition_accuracy"),
                     "kvd_real_vs_real": (results.get("calibration") or {}).get("real_vs_real", {}).get("kvd"),
                     "kvd_static": (results.get("calibration") or {}).get("static", {}).get("kvd"),
                     "kvd_ratio": (results.get("calibration") or {}).get("kvd_ratio"),
                     "seconds_per_video": float(np.mean(seconds)), "n_gen": results["n_gen"]})
    write(rows, job.run_uri)
    return rows


def write(rows: list, out: str) -> None:
    storage.write_text(storage.join(out, "sweep.json"), json.dumps(rows, indent=2))
    lines = ["| checkpoint | sampler | steps | guidance | FVD | KVD | KVD real vs real | KVD static | KVD ratio | cFVD | "
             "acc | s/video |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = "—" if r["condition_accuracy"] is None else f"{100 * r['condition_accuracy']:.1f}%"
        lines.append(f"| {storage.basename(r['checkpoint'])} | {r['sampler']} | {r['steps']} | {r['guidance']:g} | "
                     f"{r['fvd']:.1f} | {r['kvd']:.4f} | {fmt_number(r.get('kvd_real_vs_real'), 4)} | "
                     f"{fmt_number(r.get('kvd_static'), 4)} | {fmt_number(r.get('kvd_ratio'), 2)} | {fmt_number(r['cfvd_mean'], 1)} | {acc} | "
                     f"{r['seconds_per_video']:.2f} |")
    lines.append("\nKVD ratio: the model's place between other real video (0) and its source frame held still (1), "
                 "each measured against the same real test clips at the cell's size.")
    storage.write_text(storage.join(out, "sweep.md"), "\n".join(lines) + "\n")
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    ax2 = ax.twinx()
    for key in sorted({(r["checkpoint"], r["sampler"], r["guidance"]) for r in rows}):
        sel = sorted((r for r in rows if (r["checkpoint"], r["sampler"], r["guidance"]) == key), key=lambda r: r["steps"])
        label = f"{key[1]} g={key[2]:g} ({storage.basename(key[0])})"
        ax.plot([r["steps"] for r in sel], [r["fvd"] for r in sel], "o-", label=label)
        ax2.plot([r["steps"] for r in sel], [r["seconds_per_video"] for r in sel], "x--", alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps")
    ax.set_ylabel("FVD (solid)")
    ax2.set_ylabel("seconds per video (dashed)")
    ax.legend(fontsize=7)
    save_figure(fig, storage.join(out, "fvd_vs_steps.png"))


def main(argv=None) -> int:
    args = job_argparser("Sweep samplers and steps: FVD against time").parse_args(argv)
    job = load_job_config(SweepJob, args.config, args.set).require("data")
    for row in run(job):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
