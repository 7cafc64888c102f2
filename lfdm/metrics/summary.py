"""Reduce a feature table (real and generated rows) to the paper's metrics, and write the reports.

Feature table columns: video_id, kind (real/generated), label, subject, status ("ok" or why not),
predicted (motion-classifier class index, -1 unknown, -2 not classified), features (400 floats).
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import pyarrow as pa

from lfdm.io import storage
from lfdm.io.figures import pyplot, save_figure
from lfdm.metrics.accuracy import per_class_accuracy
from lfdm.metrics.calibration import HOW_TO_READ, REFERENCES, calibrate
from lfdm.metrics.fvd import SMALL_GROUP, bootstrap_fvd, fvd_kvd, grouped_fvd


def _split_ok(table: pa.Table):
    rows = table.to_pydict()
    ok = [i for i, s in enumerate(rows["status"]) if s == "ok"]
    bad = [{"video_id": rows["video_id"][i], "status": rows["status"][i]} for i, s in enumerate(rows["status"]) if s != "ok"]
    feats = np.asarray([rows["features"][i] for i in ok], np.float64)
    pick = lambda key: [rows[key][i] for i in ok]  # noqa: E731
    return feats, pick, bad


def compute_metrics(real: pa.Table, fake: pa.Table, settings, classes: Optional[Sequence[str]] = None, *,
                    missing: Sequence[str] = (), stochastic: bool = False, seed: int = 0,
                    references: Optional[Dict[str, pa.Table]] = None) -> Dict[str, object]:
    """``references``: feature tables of lfdm.metrics.calibration.REFERENCES, for the calibrated table."""
    real_x, real_col, real_bad = _split_ok(real)
    fake_x, fake_col, fake_bad = _split_ok(fake)
    if len(real_x) < 2 or len(fake_x) < 2:
        raise ValueError(f"need at least 2 usable real and generated videos, have {len(real_x)} and {len(fake_x)}")
    out: Dict[str, object] = fvd_kvd(real_x, fake_x, seed=seed)
    out["fvd_interval"] = bootstrap_fvd(real_x, fake_x, settings.bootstrap, seed)
    if references is not None:
        out["calibration"] = calibrate(real_x, out, {k: _split_ok(t)[0] for k, t in references.items()}, seed)
    out["excluded"] = {"real": real_bad, "generated": fake_bad, "missing_generated": list(missing),
                       "counts": {"real_corrupt": len(real_bad), "generated_corrupt": len(fake_bad),
                                  "generated_missing": len(missing)}}
    if not stochastic:
        c = grouped_fvd(real_x, real_col("label"), fake_x, fake_col("label"), bootstrap=settings.group_bootstrap, seed=seed)
        out.update(cfvd_mean=c["mean"], cfvd_std=c["std"], cfvd=c)
    s = grouped_fvd(real_x, real_col("subject"), fake_x, fake_col("subject"), bootstrap=settings.group_bootstrap, seed=seed)
    out.update(sfvd_mean=s["mean"], sfvd_std=s["std"], sfvd=s)
    out["small_group_threshold"] = SMALL_GROUP
    if classes is not None and not stochastic:
        expected = [list(classes).index(lab) for lab in fake_col("label")]
        acc = per_class_accuracy(fake_col("predicted"), expected, classes)
        out["condition_accuracy"] = acc["accuracy"]
        out["condition_accuracy_per_class"] = acc["per_class"]
    return out


def fmt_number(x, digits=2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def headline_rows(results: Dict[str, object]) -> List[List[str]]:
    """The metrics table, one copy for results.md and the demo's report: [metric, value, interval / std,
    n_real, n_gen] per row."""
    n_real, n_gen = str(results["n_real"]), str(results["n_gen"])
    interval = results.get("fvd_interval")
    kvd_spread = "one estimate (all samples)" if results["kvd_std"] is None else "± " + fmt_number(results["kvd_std"], 4)
    rows = [["FVD", fmt_number(results["fvd"]), f"[{fmt_number(interval[0])}, {fmt_number(interval[1])}]" if interval else "—",
             n_real, n_gen],
            ["KVD", fmt_number(results["kvd"], 4), kvd_spread, n_real, n_gen]]
    if "cfvd_mean" in results:
        rows.append(["cFVD (mean ± std over classes)", fmt_number(results["cfvd_mean"]), "± " + fmt_number(results["cfvd_std"]), "", ""])
    rows.append(["sFVD (mean ± std over subjects)", fmt_number(results["sfvd_mean"]), "± " + fmt_number(results["sfvd_std"]), "", ""])
    if "condition_accuracy" in results:
        rows.append(["condition accuracy", fmt_number(100 * results["condition_accuracy"], 1) + "%", "", "", n_gen])
    return rows


def calibration_rows(results: Dict[str, object]) -> List[List[str]]:
    """[set, FVD, KVD, n_real, n] rows of the calibrated table, the model first, the ratio last."""
    cal = results["calibration"]
    rows = [["model (generated)", fmt_number(results["fvd"], 1), fmt_number(results["kvd"], 3), str(results["n_real"]),
             str(results["n_gen"])]]
    rows += [[title, fmt_number(cal[name]["fvd"], 1), fmt_number(cal[name]["kvd"], 3), str(cal[name]["n_real"]),
              str(cal[name]["n_gen"])] for name, title in REFERENCES]
    rows.append(["ratio (0 = real, 1 = still image)", fmt_number(cal["fvd_ratio"]), fmt_number(cal["kvd_ratio"]), "", ""])
    return rows


def group_header(title: str) -> List[str]:
    return [title, "FVD", "95% interval", "n_real", "n_gen", f"n ≤ {SMALL_GROUP}"]


def group_rows(grouped: Dict[str, object]) -> List[List[str]]:
    """One row per group of a cFVD / sFVD result, in the columns of ``group_header``."""
    rows = []
    for g, v in grouped["groups"].items():
        iv = v.get("interval")
        rows.append([str(g), fmt_number(v["fvd"]), f"[{fmt_number(iv[0])}, {fmt_number(iv[1])}]" if iv else "—",
                     str(v["n_real"]), str(v["n_gen"]), "yes" if v["small"] else "no"])
    return rows


def markdown(results: Dict[str, object]) -> str:
    lines = ["| metric | value | interval / std | n_real | n_gen |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in headline_rows(results)]
    if "calibration" in results:
        lines += ["", "| calibrated | FVD | KVD | n_real | n |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in calibration_rows(results)]
        lines += ["", HOW_TO_READ]
    for key, title in (("cfvd", "class"), ("sfvd", "subject")):
        if key not in results:
            continue
        lines += ["", "| " + " | ".join(group_header(title)) + " |", "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in group_rows(results[key])]
    if "condition_accuracy_per_class" in results:
        lines += ["", "| class | condition accuracy | n |", "|---|---|---|"]
        for name, v in results["condition_accuracy_per_class"].items():
            lines.append(f"| {name} | {fmt_number(100 * v['accuracy'], 1)}% | {v['n']} |")
    if "frame_fid" in results:
        f = results["frame_fid"]
        lines += ["", "| frame metric (paper Table 5) | value | frames real / generated |", "|---|---|---|",
                  f"| FID | {fmt_number(f['fid'])} | {f['n_real_frames']} / {f['n_gen_frames']} |",
                  f"| sFID (mean ± std over subjects) | {fmt_number(f['sfid_mean'])} ± {fmt_number(f['sfid_std'])} | |"]
    counts = results["excluded"]["counts"]
    lines += ["", f"Excluded: {counts['real_corrupt']} corrupt real, {counts['generated_corrupt']} corrupt generated, "
              f"{counts['generated_missing']} missing generated videos. Groups with n ≤ {SMALL_GROUP} are dominated by "
              f"the 1/N bias of the Fréchet distance: read them with their n and with KVD."]
    return "\n".join(lines) + "\n"


def group_plot(group: Dict[str, object], title: str, uri: str) -> None:
    names = [g for g, v in group["groups"].items() if v["fvd"] is not None]
    values = [group["groups"][g]["fvd"] for g in names]
    lo = [v - (group["groups"][g].get("interval") or [v, v])[0] for g, v in zip(names, values)]
    hi = [(group["groups"][g].get("interval") or [v, v])[1] - v for g, v in zip(names, values)]
    fig, ax = pyplot().subplots(figsize=(max(4, 0.6 * len(names) + 2), 3.2))
    ax.bar(range(len(names)), values, yerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)], capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("FVD")
    ax.set_title(title)
    save_figure(fig, uri)


def write_reports(results: Dict[str, object], out_uri: str) -> None:
    storage.write_text(storage.join(out_uri, "results.json"), json.dumps(results, indent=2, default=float))
    storage.write_text(storage.join(out_uri, "results.md"), markdown(results))
    if "cfvd" in results:
        group_plot(results["cfvd"], "FVD per class (cFVD groups), 95% bootstrap intervals",
                   storage.join(out_uri, "cfvd_per_class.png"))
    group_plot(results["sfvd"], "FVD per subject (sFVD groups), 95% bootstrap intervals",
               storage.join(out_uri, "sfvd_per_subject.png"))
