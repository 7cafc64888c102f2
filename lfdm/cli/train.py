"""lfdm train lfae | dm"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="train a stage on this machine")
    tsub = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    a = tsub.add_parser("lfae", help="stage 1: the latent flow auto-encoder")
    _common(a)
    a.add_argument("--init", help="start from the weights of this checkpoint")
    a.add_argument("--decoder-only", action="store_true",
                   help="new-domain adaptation (paper Table 5): freeze all but the decoder; needs --init")
    a.set_defaults(func=_lfae)
    d = tsub.add_parser("dm", help="stage 2: the conditional 3D U-Net diffusion model, from a flow cache")
    _common(d, data=False)
    d.add_argument("--lfae", required=True, help="the frozen stage-1 checkpoint")
    d.add_argument("--flows", required=True, help="flow cache made by `lfdm flows precompute` with that --lfae")
    d.set_defaults(func=_dm)


def _common(p, data: bool = True) -> None:
    p.add_argument("--preset", required=True)
    if data:
        p.add_argument("--data", required=True, help="manifest.parquet")
    p.add_argument("--out", required=True, help="checkpoint directory (resumed if it holds a run)")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. train.lfae.steps=500")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--max-minutes", type=float, help="stop (and export) after this much wall time")


def _lfae(args) -> int:
    from lfdm.cli import CommandError
    from lfdm.training.lfae_stage import build_lfae_stage
    if args.decoder_only and not args.init:
        raise CommandError("--decoder-only fine-tunes a trained auto-encoder: pass --init CKPT_DIR")
    cfg, device = _config(args)
    stage = build_lfae_stage(cfg, args.data, device, init=args.init, decoder_only=args.decoder_only)
    print(_run(stage, args, device))
    return 0


def _dm(args) -> int:
    from lfdm.training.dm_stage import build_dm_stage, label_conditions
    cfg, device = _config(args)
    conditions = label_conditions(cfg, args.lfae, args.flows)
    print(_run(build_dm_stage(cfg, args.lfae, args.flows, device, conditions=conditions), args, device))
    return 0


def _config(args):
    from lfdm.config import parse_override_args
    from lfdm.device import pick_device
    from lfdm.presets import get_preset
    return get_preset(args.preset, parse_override_args(args.override)), pick_device(args.device)


def _run(stage, args, device) -> str:
    """Stage 1 or 2 on this machine: step checkpoints, metrics and samples in OUT/train, the model in OUT."""
    from lfdm.cli import CommandError
    from lfdm.io import storage
    from lfdm.training.run import LocalHooks, run_stage
    result = run_stage(stage, LocalHooks(device), storage.join(args.out, "train"), args.out,
                       max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    if "stopped" in result:
        raise CommandError(f"{result['stopped']}. No model was exported; train again with another "
                           "train.lfae.seed (and another --out)")
    return args.out
