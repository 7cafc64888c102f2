"""I3D throughput from in-memory tensors (clips of 224x224, T frames).

    python benchmarks/bench_i3d.py --frames 16 40 --batch 8 [--bf16] [--compile]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Case, device_arg, run_cases  # noqa: E402

from lfdm.device import bf16_autocast  # noqa: E402
from lfdm.metrics.i3d import InceptionI3d  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device")
    p.add_argument("--frames", type=int, nargs="+", default=[16, 40])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = device_arg(args.device)
    net = InceptionI3d().to(device).eval()       # random weights: the cost does not depend on them
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d)
    if args.compile:
        net = torch.compile(net)
    cases = []
    for t in args.frames:
        x = torch.rand(args.batch, 3, t, 224, 224, device=device) * 2 - 1

        @torch.no_grad()
        def run(x=x):
            ctx = bf16_autocast(device, args.bf16)
            with ctx:
                return net(x)
        cases.append(Case(f"I3D {t}x224x224", run, args.batch, unit="clip",
                          params={"frames": t, "batch": args.batch, "bf16": args.bf16, "compiled": args.compile}))
    run_cases(f"i3d_{device.type}", cases, device, repeats=args.repeats,
              command="python benchmarks/bench_i3d.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
