"""Which classifier-free guidance scale generates each class best? Every held-out source frame of a synthetic
run generated with its own label at each guidance, judged by the motion classifier; per class the accuracy and
the mean motion read (zoom in log-scale, shift as a fraction of the image, turn in degrees), so an overshoot
(objects that shrink as they move, zoom-outs that vanish) shows beside the accuracy.

    python benchmarks/guidance_sweep.py --model RUN/dm/model --manifest RUN/data/manifest.parquet \
        --out guidance.json [--guidance 2 3] [--guidance-from 0 0.6] [--videos-per-class 3]

``--guidance-from f``: guidance only on the steps t >= f * T (``sample.guidance_from``); every pair of scale and
start is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hue_sensitivity import judged_videos, source_frames, summary  # noqa: E402

from lfdm.pipelines.image_to_video import ImageToVideoPipeline  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a generation checkpoint (RUN/dm/model)")
    p.add_argument("--manifest", required=True, help="the synthetic run's manifest.parquet")
    p.add_argument("--out", required=True, help="JSON: the summary and every video per guidance")
    p.add_argument("--guidance", type=float, nargs="+", default=[2.0, 3.0])
    p.add_argument("--guidance-from", type=float, nargs="+", default=[0.0],
                   help="fractions of the diffusion's steps below which guidance is off")
    p.add_argument("--videos-per-class", type=int, default=3, help="per held-out subject")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    pipe = ImageToVideoPipeline.load(args.model, device=args.device)
    sources = source_frames(args.manifest, args.videos_per_class, pipe.config.data.image_size)
    results = {}
    print("| guidance | class | accuracy | zoom | shift | turn (deg) |\n|---|---|---|---|---|---|")
    for g in args.guidance:
        for start in args.guidance_from:
            key = str(g) if start == 0 else f"{g} from {start}"
            rows = judged_videos(pipe, sources, guidance=g, guidance_from=start)
            results[key] = {"guidance": g, "guidance_from": start, "summary": summary(rows), "videos": rows}
            for label, s in results[key]["summary"].items():
                print(f"| {key} | {label} | {100 * s['accuracy']:.0f} % ({s['n']}) | {s['zoom']:.2f} | "
                      f"{s['shift']:.2f} | {s['turn_deg']:.0f} |")
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "manifest": args.manifest, "sampler": pipe.config.sample.sampler,
                   "steps": pipe.config.sample.steps, "guidance": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
