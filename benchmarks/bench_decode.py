"""Decoding a K-frame video from generated flows: batched with the source encoded once vs per frame
with the source re-encoded for every frame (how the official sample loop decodes).

    python benchmarks/bench_decode.py --preset mug128 --frames 40
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Case, device_arg, run_cases  # noqa: E402

from lfdm.models.autoencoder import LatentFlowAutoencoder  # noqa: E402
from lfdm.pipelines.image_to_video import auto_decode_batch, decode_frames  # noqa: E402
from lfdm.presets import get_preset  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="mug128")
    p.add_argument("--device")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--batch", type=int, default=1, help="videos")
    p.add_argument("--decode-batch", type=int, default=0, help="frames per decoder call (0: the pipeline's auto choice)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = device_arg(args.device)
    args.decode_batch = args.decode_batch or auto_decode_batch(device)
    cfg = get_preset(args.preset)
    lfae = LatentFlowAutoencoder(cfg.autoencoder).to(device).eval()
    s, h = cfg.data.image_size, cfg.data.image_size // 4
    b, k = args.batch, args.frames
    images = torch.rand(b, 3, s, s, device=device)
    flows = (torch.rand(b, k, h, h, 2, device=device) * 2 - 1)
    occ = torch.rand(b, 1, k, h, h, device=device)

    @torch.no_grad()
    def per_frame():
        out = []
        for i in range(b):
            for j in range(k):
                src = images[i:i + 1]
                out.append(lfae.decode(lfae.encode(src), src, flows[i, j:j + 1], occ[i:i + 1, :, j]))
        return out

    @torch.no_grad()
    def batched():
        return decode_frames(lfae, lfae.encode(images), images, flows, occ, args.decode_batch)
    params = {"preset": cfg.name, "frames": k, "videos": b}
    run_cases(f"decode_{args.preset}_{device.type}", [
        Case("per frame, source re-encoded", per_frame, b, params=params),
        Case(f"batched ({args.decode_batch} frames/call), source encoded once", batched, b, params=params),
    ], device, repeats=args.repeats, command="python benchmarks/bench_decode.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
