"""lfdm generate"""
from __future__ import annotations

import json
import os


def register(sub) -> None:
    p = sub.add_parser("generate", help="image + class label or free-text prompt -> video")
    p.add_argument("--checkpoint", required=True, help="full model checkpoint (kind lfdm)")
    p.add_argument("--image", required=True)
    condition = p.add_mutually_exclusive_group()
    condition.add_argument("--label", help="class label from the checkpoint's list; omit both --label and --prompt for "
                                           "stochastic generation")
    condition.add_argument("--prompt", help="free text describing the motion, e.g. 'slide it to the left' (loads the "
                                            "checkpoint's text encoder, offline)")
    p.add_argument("--out", required=True, help=".mp4 or .gif (the video), or .npz (frames, flows, occlusions)")
    p.add_argument("--strip", action="store_true", help="write input | generated | flow | occlusion side by side")
    add_sample_overrides(p)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--device")
    p.set_defaults(func=_generate)

    r = sub.add_parser("generate-run", help="a generation run (plan, videos, generated.parquet) in this process; "
                                            "python -m ray_jobs.generate is the same run on Ray")
    r.add_argument("--data", required=True, help="manifest.parquet (source frames)")
    r.add_argument("--out", required=True, help="the run's folder (a rerun resumes it)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="generation settings, e.g. checkpoint=CKPT num_videos=90 steps=10 formats=[npy,mp4] "
                        "(lfdm.runs.generation.GenerationSettings)")
    r.add_argument("--device")
    r.set_defaults(func=_generate_run)


# Flags that are shorthands for config fields: they become overrides of those fields, like --override.
SHORTHANDS = {"sampler": "sample.sampler", "steps": "sample.steps", "guidance": "sample.guidance",
              "eta": "sample.eta", "seed": "sample.seed", "frames": "data.num_frames"}


def add_sample_overrides(p, seed: bool = True) -> None:
    from lfdm.diffusion.samplers import SAMPLERS
    p.add_argument("--sampler", choices=list(SAMPLERS), help="= --override sample.sampler=...")
    p.add_argument("--steps", type=int, help="= --override sample.steps=...")
    p.add_argument("--guidance", type=float, help="= --override sample.guidance=...")
    p.add_argument("--eta", type=float, help="= --override sample.eta=... (ddim)")
    if seed:
        p.add_argument("--seed", type=int, help="= --override sample.seed=...")
    p.add_argument("--frames", type=int, help="= --override data.num_frames=...")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                   help="sampling settings of the checkpoint's config, e.g. sample.steps=10 sample.bf16=true")


def sample_overrides(args) -> dict:
    from lfdm.config import parse_override_args
    flags = {key: getattr(args, flag) for flag, key in SHORTHANDS.items() if getattr(args, flag, None) is not None}
    return {**parse_override_args(args.override), **flags}


def load_pipeline_for(args):
    """The checkpoint's pipeline on --device, with the sampling overrides of the command line applied."""
    from lfdm.device import pick_device
    from lfdm.pipelines.image_to_video import ImageToVideoPipeline
    pipe = ImageToVideoPipeline.load(args.checkpoint, device=pick_device(args.device))
    return pipe.with_overrides(sample_overrides(args))


def _generate(args) -> int:
    from lfdm.cli import CommandError
    from lfdm.io import storage
    from lfdm.data.images_in import ImageError, decode_image, image_tensor
    from lfdm.io.outputs import encode, frames_uint8, npz_bytes, strip_frames
    from lfdm.models.text import check_prompt
    suffix = os.path.splitext(args.out)[1].lower().lstrip(".")
    if suffix not in ("mp4", "gif", "npz"):
        raise CommandError(f"--out must end in .mp4, .gif or .npz, not {args.out!r}")
    pipe = load_pipeline_for(args)
    if args.label is not None and args.label not in pipe.labels:
        raise CommandError(f"unknown label {args.label!r}; this model accepts: "
                           + ", ".join(repr(x) for x in pipe.labels))
    try:
        size = pipe.config.data.image_size
        image = image_tensor(decode_image(storage.read_bytes(args.image), args.image, reduce_to=size), size)
    except (ImageError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    if args.prompt is not None:
        try:
            check_prompt(args.prompt)
        except ValueError as exc:
            raise CommandError(f"--prompt: {exc}") from None
    cfg = pipe.config.sample
    out = pipe(image[None], [args.label], prompts=[args.prompt], seeds=[cfg.seed])
    if suffix == "npz":
        storage.write_bytes(args.out, npz_bytes(frames_uint8(out.frames[0]), out.flows[0], out.occlusions[0, 0]))
    else:
        frames = (strip_frames(image, out.frames[0], out.flows[0], out.occlusions[0]) if args.strip
                  else frames_uint8(out.frames[0]))
        storage.write_bytes(args.out, encode(frames, suffix, args.fps))
    print(json.dumps({"out": args.out, "label": args.label, "prompt": args.prompt, "seed": cfg.seed, "sampler": cfg.sampler,
                      "steps": cfg.steps, "guidance": cfg.guidance, "guidance_from": cfg.guidance_from,
                      "prompt_projection": cfg.prompt_projection, "frames": int(out.frames.shape[2])}))
    return 0


def _generate_run(args) -> int:
    from lfdm.config import from_dict, parse_override_args, with_overrides
    from lfdm.device import pick_device
    from lfdm.runs.generation import GenerationSettings, generate_local
    settings = with_overrides(from_dict(GenerationSettings, {}), parse_override_args(args.set))
    table = generate_local(args.out, args.data, settings, pick_device(args.device))
    print(json.dumps({"out": args.out, "videos": table.num_rows}))
    return 0
