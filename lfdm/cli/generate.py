"""lfdm generate"""
from __future__ import annotations

import io
import json
import os


def register(sub) -> None:
    p = sub.add_parser("generate", help="image + class label -> video")
    p.add_argument("--checkpoint", required=True, help="full model checkpoint (kind lfdm)")
    p.add_argument("--image", required=True)
    p.add_argument("--label", help="class label from the checkpoint's list; omit for stochastic generation")
    p.add_argument("--out", required=True, help=".mp4 or .gif (the video), or .npz (frames, flows, occlusions)")
    p.add_argument("--strip", action="store_true", help="write input | generated | flow | occlusion side by side")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "dpmpp"))
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--device")
    p.set_defaults(func=_generate)


def _generate(args) -> int:
    import numpy as np
    import torch
    from lfdm.cli import CommandError
    from lfdm.io import storage
    from lfdm.io.images_in import ImageError, decode_image, image_tensor
    from lfdm.io.outputs import encode, frames_uint8, strip_frames
    from lfdm.pipelines.image_to_video import load_pipeline
    suffix = os.path.splitext(args.out)[1].lower().lstrip(".")
    if suffix not in ("mp4", "gif", "npz"):
        raise CommandError(f"--out must end in .mp4, .gif or .npz, not {args.out!r}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = load_pipeline(args.checkpoint, device=device)
    if args.label is not None and args.label not in pipe.labels:
        raise CommandError(f"unknown label {args.label!r}; this model accepts: "
                           + ", ".join(repr(x) for x in pipe.labels))
    try:
        image = image_tensor(decode_image(storage.read_bytes(args.image), args.image), pipe.config.data.image_size)
    except (ImageError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    out = pipe(image[None], [args.label], seeds=[args.seed], sampler=args.sampler,
               steps=args.steps, guidance=args.guidance, num_frames=args.frames)
    if suffix == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, frames=frames_uint8(out.frames[0]), flows=out.flows[0].cpu().numpy(),
                            occlusions=out.occlusions[0, 0].cpu().numpy())
        storage.write_bytes(args.out, buf.getvalue())
    else:
        frames = (strip_frames(image, out.frames[0], out.flows[0], out.occlusions[0]) if args.strip
                  else frames_uint8(out.frames[0]))
        storage.write_bytes(args.out, encode(frames, suffix, args.fps))
    cfg = pipe.config.sample
    print(json.dumps({"out": args.out, "label": args.label, "seed": args.seed, "sampler": args.sampler or cfg.sampler,
                      "steps": args.steps or cfg.steps, "frames": int(out.frames.shape[2])}))
    return 0
