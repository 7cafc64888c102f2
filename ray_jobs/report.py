"""The demo's report: one static HTML file with its images beside it.

For each class a row of examples (input frame | generated video as an animated GIF | flow in the
Middlebury colour wheel, scaled per video | occlusion), training loss curves of both stages, the metrics
table with intervals and group sizes, the calibrated FVD / KVD table, condition accuracy per class,
stage 1's reconstruction and flow per class, the run's configuration and timings.
"""
from __future__ import annotations

import html
import json
from typing import Dict, List, Optional, Tuple

import numpy as np

from lfdm.io import storage
from lfdm.io.figures import pyplot, save_figure
from lfdm.metrics.calibration import HOW_TO_READ
from lfdm.metrics.summary import calibration_rows, fmt_number, group_header, group_rows, headline_rows
from lfdm.training.lfae_objective import LFAE_METRICS

LOSS_KEYS = tuple(k for k in LFAE_METRICS if k != "flow_px")             # flow_px is a diagnostic, not a loss


def loss_curve_png(metrics_uris: Dict[str, str], uri: str) -> None:
    fig, axes = pyplot().subplots(1, len(metrics_uris), figsize=(5 * len(metrics_uris), 3.2))
    for ax, (title, metrics_uri) in zip(np.atleast_1d(axes), metrics_uris.items()):
        rows = [json.loads(line) for line in storage.read_text(metrics_uri).splitlines() if line.strip()] \
            if storage.exists(metrics_uri) else []
        for key in (k for k in LOSS_KEYS if rows and k in rows[0]):         # stage 2 logs "loss" only
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    save_figure(fig, uri, dpi=100)


def example_strips(generated_run: str, manifest_uri: str, out_dir: str,
                   per_class: int = 2) -> Dict[str, List[Tuple[str, float]]]:
    """Strip GIFs (input | video | flow | occlusion) of the first videos of each class of a generation run,
    from the flows and occlusions it wrote (generation.formats must include npz). Returns {label: [(name,
    the displacement in image pixels at which that video's flow colours saturate)]}."""
    import torch
    from lfdm.data.datasets import load_frames
    from lfdm.data.manifest import read_manifest
    from lfdm.io.flow_vis import robust_flow_scale
    from lfdm.io.outputs import encode, strip_frames
    from lfdm.runs.generation import PLAN, video_uri
    plan = storage.read_parquet(storage.join(generated_run, PLAN)).to_pylist()
    records = read_manifest(manifest_uri).by_id()
    files: Dict[str, List[Tuple[str, float]]] = {}
    for row in plan:
        label = row["label"]
        if len(files.setdefault(label, [])) >= per_class:
            continue
        with np.load(storage.bytes_io(video_uri(generated_run, row["video_id"], "npz"))) as data:
            frames, flows, occlusions = data["frames"], data["flows"], data["occlusions"]
        source = load_frames(records[row["source_video_id"]], [row["source_frame"]], frames.shape[1], cache=False)[0]
        scale = robust_flow_scale(flows)                                  # flow pixels
        strip = strip_frames(source, torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255,
                             torch.from_numpy(flows), torch.from_numpy(occlusions)[None], max_radius=scale)
        big = strip.repeat(2, axis=1).repeat(2, axis=2)          # 2x nearest, for legibility
        name = f"examples/{row['video_id']}.gif"
        storage.write_bytes(storage.join(out_dir, name), encode(big, "gif", fps=8))
        files[label].append((name, scale * frames.shape[1] / flows.shape[1]))
    return files


def _table(rows: List[List[str]], header: List[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _escaped(rows: List[List[str]]) -> List[List[str]]:
    return [[html.escape(cell) for cell in row] for row in rows]


def stage1_rows(stage1: dict) -> List[List[str]]:
    """Per class: reconstruction L1 of the auto-encoder and of copying the source, their ratio, and the flow's
    magnitude against the true motion (the synthetic dataset's)."""
    recon, fidelity = stage1["reconstruction"]["per_class"], stage1["flow_fidelity"]["per_class"]
    motion = (stage1.get("motion") or {}).get("per_class", {})      # absent from runs made before it was measured
    return [[label, fmt_number(r["lfae_l1"], 4), fmt_number(r["copy_source_l1"], 4), fmt_number(r["relative_to_copy"]),
             fmt_number(fidelity.get(label, {}).get("magnitude_ratio")), fmt_number(fidelity.get(label, {}).get("endpoint_error_px")),
             share_of(motion, label), fmt_number(motion.get(label, {}).get("motion_ratio"))]
            for label, r in recon.items()]


STAGE1_HEADER = ["class", "L1 auto-encoder", "L1 copy source", "ratio (< 1: better than copying)",
                 "flow / true motion", "flow error (px)", "reconstruction classified as its class",
                 "reconstructed / real motion"]


def share_of(accuracy: Dict[str, dict], label: str) -> str:
    """A class's accuracy as "88% of 8", or "—" where the table has none."""
    return f"{100 * accuracy[label]['accuracy']:.0f}% of {accuracy[label]['n']}" if label in accuracy else "—"


RETRIEVALS = {"class_means": "prompt nearest its class (training sentences)", "labels": "prompt nearest its label",
              "sentence_posterior": "most posterior weight on its class's sentences (training condition noise)"}


def prompt_rows(accuracy: Dict[str, dict], prompts: dict) -> List[List[str]]:
    """Per class: accuracy from the label, from held-out prompts, and the prompts' retrieval of their class."""
    by_class = prompts["accuracy_per_class"] or {}
    retrieved = [prompts["retrieval"][k]["per_class"] for k in RETRIEVALS if k in prompts["retrieval"]]
    return [[label, *(share_of(table, label) for table in (accuracy, by_class, *retrieved)),
             "; ".join(prompts["prompts"][label])] for label in prompts["prompts"]]


def prompt_html(accuracy: Dict[str, dict], prompts: Optional[dict]) -> str:
    if not prompts:
        return ""
    overall = lambda v: "—" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    header = ["class", "from the label", "from held-out prompts",
              *(name for k, name in RETRIEVALS.items() if k in prompts["retrieval"]), "held-out prompts"]
    projection = ("On (sample.prompt_projection): each prompt's condition was moved to its posterior mean over the "
                  "training sentences under stage 2's condition noise before sampling."
                  if prompts.get("prompt_projection") else "Off (sample.prompt_projection): prompts were sampled "
                  "from their conditions as the text map gives them.")
    return ("<h2>Free-text prompts never seen in training</h2>"
            + _table(_escaped(prompt_rows(accuracy, prompts)), header)
            + f"<p>Overall: {overall(prompts['label_accuracy'])} from the labels, {overall(prompts['accuracy'])} from "
              f"held-out prompts (n = {prompts['n']}); retrieval {overall(prompts['retrieval']['class_means']['accuracy'])}"
              " nearest the class's training sentences, "
              f"{overall(prompts['retrieval']['labels']['accuracy'])} nearest the label. Retrieval is the text encoder's "
              "share (the prompt's condition alone, before any diffusion); a prompt that retrieves its class and "
              f"still fails is the diffusion model's miss. Prompt projection: {projection}</p>")


def shape_html(shapes: Optional[dict]) -> str:
    """Per class: shape IoU and area drift of real and generated objects (lfdm.metrics.shape)."""
    if not shapes:
        return ""
    stage1 = (shapes.get("stage1") or {}).get("per_class")
    kinds = [("real", shapes["real"]["per_class"]), *([("stage-1 reconstruction", stage1)] if stage1 else []),
             ("generated", shapes["generated"]["per_class"])]
    rows = [[label, *(fmt_number(table.get(label, {}).get("shape_iou")) for _, table in kinds),
             fmt_number(shapes["gap"].get(label)),
             *(fmt_number(table.get(label, {}).get("area_drift")) for _, table in kinds),
             str(shapes["generated"]["per_class"].get(label, {}).get("frames_without_object", "—"))]
            for label in shapes["real"]["per_class"]]
    verdict = "within" if shapes["within_margin"] else "not within"
    recon_note = (" Stage-1 reconstruction: the same real clips rebuilt by the auto-encoder from their first frame "
                  "through its own flows: what stage 1 can express, so a generated IoU near it and below real is "
                  "stage 1's loss, not stage 2's." if stage1 else "")
    return ("<h2>Shape preservation</h2>" + _table(_escaped(rows), [
        "class", *(f"shape IoU {name}" for name, _ in kinds), "gap (real - generated)",
        *(f"area drift {name}" for name, _ in kinds), "generated frames without an object"])
        + "<p>Each frame's object (its coloured pixels) against the source frame's, after moving, scaling and "
          "turning the source to fit: shape IoU 1 = the same shape, moved; a blob, a ghost left where the object "
          "started or a collapse lowers it. Area drift |log(area / source area)| for motions that keep the size "
          f"(0 = same size).{recon_note} Goal: every class's generated IoU within {shapes['margin']:.2f} of real; "
          f"this run is <b>{verdict}</b> it.</p>")


def write_html(out_dir: str, results: dict, examples: Dict[str, List[Tuple[str, float]]], timings: Dict[str, float],
               config: dict, accuracy: Dict[str, dict], stage1: Optional[dict] = None,
               collapse_warning: Optional[str] = None, prompts: Optional[dict] = None,
               shapes: Optional[dict] = None) -> str:
    example_rows = [[html.escape(label), share_of(accuracy, label),
                     " ".join(f'<figure style="display:inline-block;margin:2px"><img src="{f}" alt="{html.escape(label)}">'
                              f'<figcaption>flow colour saturates at {px:.1f} px</figcaption></figure>'
                              for f, px in files)]
                    for label, files in examples.items()]
    groups = []
    for key, title in (("cfvd", "class"), ("sfvd", "subject")):
        if key in results:
            groups.append(f"<h3>FVD per {title}</h3>" + _table(_escaped(group_rows(results[key])), group_header(title)))
    timing_rows = [[html.escape(k), f"{v:.1f}"] for k, v in timings.items()]
    calibrated = ""
    if "calibration" in results:
        calibrated = ("<h3>Calibrated FVD / KVD</h3>" + _table(_escaped(calibration_rows(results)),
                                                                ["set", "FVD", "KVD", "n_real", "n"])
                      + f"<p>{html.escape(HOW_TO_READ)}</p>")
    stage1_html = ""
    if stage1:
        stage1_html = ("<h2>Stage 1 per class (test split)</h2>" + (f"<p><b>{html.escape(collapse_warning)}</b></p>"
                                                                     if collapse_warning else "") + _table(_escaped(stage1_rows(stage1)), STAGE1_HEADER)
                       + "<p>Reconstruction: frame 0 drives 40 frames of each test video; L1 on [0, 1] pixels. Flow / true "
                         "motion: the auto-encoder's flow on the object against the motion the dataset rendered (1 = all "
                         "of it); stage 2 can only generate motions that stage 1 encodes. The last two columns take each "
                         "test clip as generation makes it, decode every frame through its real flow and judge it with "
                         "the motion classifier: the condition accuracy a perfect stage 2 would reach, and the motion "
                         "the decoded frames show over the real clip's (1 = all of it).</p>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>LFDM demo report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:middle}}img{{image-rendering:pixelated;margin:2px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}}</style></head><body>
<h1>LFDM demo: conditional image-to-video on the synthetic motion dataset</h1>
<p>Each example is <b>input frame | generated video | latent flow (Middlebury colour wheel) | occlusion map</b>.
The source frames come from test-split subjects the models never saw in training. Condition accuracy is the share of
generated videos whose motion the training-free motion classifier recognises as the requested class.</p>
<h2>Examples per class</h2>{_table(example_rows, ["class", "condition accuracy", "examples"])}
<h2>Metrics</h2>{_table(_escaped(headline_rows(results)), ["metric", "value", "interval / std", "n_real", "n_gen"])}
{calibrated}
<p>FVD is biased ∝ 1/N: groups of a few hundred videos or fewer (flagged) are dominated by that bias; read them with
their sizes and with KVD. Intervals are bootstrap percentiles; a resample repeats videos, which shrinks the
effective N and raises FVD, so at these sizes an interval can lie above its point estimate: it shows the spread,
not a bias-corrected range. Protocol (hash {html.escape(results['protocol']['hash'])}):</p>
<pre>{html.escape(json.dumps(results['protocol'], indent=2))}</pre>
{''.join(groups)}
<img src="cfvd_per_class.png" alt="cFVD per class"> <img src="sfvd_per_subject.png" alt="sFVD per subject">
{prompt_html(accuracy, prompts)}
{shape_html(shapes)}
{stage1_html}
<h2>Training</h2><img src="loss_curves.png" alt="loss curves">
<h2>Timings (seconds)</h2>{_table(timing_rows, ["stage", "seconds"])}
<h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2))}</pre>
</body></html>"""
    uri = storage.join(out_dir, "report.html")
    storage.write_text(uri, page)
    return uri
