"""lfdm eval recon | fvd | motion | run"""
from __future__ import annotations

import dataclasses
import json

from lfdm.cli.generate import add_sample_overrides, load_pipeline_for


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="METRIC")
    r = esub.add_parser("recon", help="stage-1 self-reconstruction L1 (paper Table 3) and the copy-source baseline")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--data", required=True, help="manifest.parquet")
    r.add_argument("--split", default="test")
    r.add_argument("--preset", help="fail unless the checkpoint was built with this preset")
    r.add_argument("--out", help="JSON output (default: CHECKPOINT/recon_SPLIT.json)")
    r.add_argument("--device")
    r.add_argument("--max-videos", type=int)
    r.add_argument("--motion", action="store_true",
                   help="also judge the reconstructed clips with the motion classifier (synthetic dataset only): "
                        "per class, the condition accuracy a perfect stage 2 would reach on this split")
    r.add_argument("--unwrap-turns", action="store_true",
                   help="compute each video's flows with autoencoder.unwrap_turns on, whatever the checkpoint says")
    r.set_defaults(func=_recon)
    f = esub.add_parser("fvd", help="FVD and KVD between two uint8 arrays (N, T, H, W, 3), as JSON")
    f.add_argument("--real", required=True, help=".npy of real videos")
    f.add_argument("--fake", required=True, help=".npy of generated videos")
    f.add_argument("--weights", default="reference",
                   help="'reference' (make i3d-weights), a StyleGAN-V i3d_torchscript.pt or a TATS state dict")
    f.add_argument("--unscaled", action="store_true",
                   help="feed the arrays' values as they are (no 2x/255-1); for float arrays")
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--bootstrap", type=int, default=0, help="bootstrap rounds for a 95%% interval")
    f.add_argument("--device")
    f.set_defaults(func=_fvd)
    m = esub.add_parser("motion", help="condition accuracy on the synthetic dataset (motion classifier)")
    m.add_argument("--checkpoint", required=True)
    m.add_argument("--data", required=True, help="the synthetic dataset's manifest.parquet")
    m.add_argument("--split", default="test")
    m.add_argument("--num-videos", type=int, default=90, help="spread evenly over classes and subjects")
    m.add_argument("--seed", dest="plan_seed", type=int, default=0,
                   help="run seed of the plan (source frames and per-video seeds)")
    m.add_argument("--batch", type=int, default=6)
    m.add_argument("--prompts", help="generate from free text instead of the labels: 'held-out' (the synthetic "
                                     "dataset's held-out sentences) or a YAML/JSON file {class: [sentence, ...]}")
    m.add_argument("--out", help="JSON output")
    m.add_argument("--device")
    add_sample_overrides(m, seed=False)
    m.set_defaults(func=_motion)
    v = esub.add_parser("run", help="FVD, cFVD, sFVD, KVD of a generation run (lfdm generate-run), in this "
                                    "process; python -m ray_jobs.evaluate is the same run on Ray")
    v.add_argument("--data", required=True, help="manifest.parquet (real clips: its test split)")
    v.add_argument("--out", required=True, help="the evaluation run's folder")
    v.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="evaluation settings, e.g. generated=RUN bootstrap=20 (lfdm.runs.evaluation.EvaluationSettings)")
    v.add_argument("--device")
    v.set_defaults(func=_run)


def _recon(args) -> int:
    from lfdm.checkpoint import load_lfae
    from lfdm.cli import CommandError
    from lfdm.device import pick_device
    from lfdm.io import storage
    from lfdm.runs.reconstruction import evaluate_reconstruction
    device = pick_device(args.device)
    model, ckpt = load_lfae(args.checkpoint, preset=args.preset, device=device)
    if args.unwrap_turns:
        import dataclasses
        model.cfg = dataclasses.replace(ckpt.config, autoencoder=dataclasses.replace(
            ckpt.config.autoencoder, unwrap_turns=True)).validate().autoencoder
    result = evaluate_reconstruction(model, args.data, args.split, image_size=ckpt.config.data.image_size,
                                     device=device, max_videos=args.max_videos)
    result["checkpoint"] = args.checkpoint
    if args.motion:
        from lfdm.runs.reconstruction import autoencoder_reconstruct
        from lfdm.runs.reconstruction_motion import evaluate_reconstruction_motion
        try:
            result["motion"] = evaluate_reconstruction_motion(
                autoencoder_reconstruct(model), args.data, args.split, num_frames=ckpt.config.data.num_frames,
                image_size=ckpt.config.data.image_size)
        except ValueError as exc:
            raise CommandError(f"--motion: {exc}") from None
    out = args.out or storage.join(args.checkpoint, f"recon_{args.split}.json")
    storage.write_text(out, json.dumps(result, indent=2))
    print(f"LFAE reconstruction L1 ({args.split}, {result['videos']} videos, {result['frames']} frames): "
          f"{result['lfae_l1']:.5f}")
    print(f"copy-the-source baseline L1:                             {result['copy_source_l1']:.5f}")
    print(f"ratio LFAE / copy: {result['relative_to_copy']:.3f}   -> {out}")
    if args.motion:
        print("reconstructed clips classified right (real clips), motion reconstructed / real, per class:")
        for label, v in result["motion"]["per_class"].items():
            ratio = "-" if v["motion_ratio"] is None else f"{v['motion_ratio']:.2f}"
            print(f"  {label:24s} {100 * v['accuracy']:5.1f} % ({100 * v['real_accuracy']:.1f} %)  {ratio}")
    return 0


def _fvd(args) -> int:
    import numpy as np
    from lfdm.cli import CommandError
    from lfdm.device import pick_device
    from lfdm.metrics.fvd import FVDProtocol, bootstrap_fvd, extract_features, fvd_kvd
    from lfdm.metrics.i3d_weights import WeightsError, load_detector
    device = pick_device(args.device)
    arrays = {}
    for name in ("real", "fake"):
        path = getattr(args, name)
        try:
            a = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read --{name} {path}: {exc}") from exc
        if a.ndim != 5 or a.shape[-1] != 3:
            raise CommandError(f"--{name} {path} has shape {a.shape}; expected (N, T, H, W, 3)")
        if a.dtype != np.uint8 and not args.unscaled:
            raise CommandError(f"--{name} {path} is {a.dtype}; the protocol takes uint8 (or pass --unscaled)")
        arrays[name] = a
    if arrays["real"].shape[1] != arrays["fake"].shape[1]:
        raise CommandError(f"real and fake videos differ in length: {arrays['real'].shape[1]} vs {arrays['fake'].shape[1]}")
    try:
        detector, weights_id = load_detector(args.weights, device)
    except WeightsError as exc:
        raise CommandError(str(exc)) from exc
    feats = {k: extract_features(detector, v, batch_size=args.batch_size, rescale=not args.unscaled, device=device)
             for k, v in arrays.items()}
    result = fvd_kvd(feats["real"], feats["fake"])
    result["interval"] = bootstrap_fvd(feats["real"], feats["fake"], args.bootstrap)
    protocol = FVDProtocol(num_frames=int(arrays["real"].shape[1]), weights=weights_id,
                           clip_choice="as given: every video of --real and --fake, all frames")
    if args.unscaled:
        protocol = dataclasses.replace(protocol, value_range="fed as is (--unscaled)")
    result["protocol"] = {**protocol.__dict__, "hash": protocol.digest()}
    print(json.dumps(result, indent=2))
    return 0


def _motion(args) -> int:
    from lfdm.io import storage
    from lfdm.runs.motion_accuracy import evaluate_motion
    from lfdm.data.phrasings import SYNTHETIC_HELD_OUT, PhrasingError, read_table
    from lfdm.data.synthetic import CLASSES
    from lfdm.runs.generation import checked_prompts
    from lfdm.runs.plan import check_prompt_classes
    prompts = None
    if args.prompts:
        table = dict(SYNTHETIC_HELD_OUT) if args.prompts == "held-out" else read_table(args.prompts)
        try:
            check_prompt_classes(table, CLASSES)
            prompts = checked_prompts(table)
        except ValueError as exc:
            raise PhrasingError(f"--prompts {args.prompts}: {exc}") from None
    result = evaluate_motion(load_pipeline_for(args), args.data, num_videos=args.num_videos, split=args.split,
                             seed=args.plan_seed, batch=args.batch, prompts=prompts)
    source = f"prompts {args.prompts}" if prompts else "labels"
    print(f"condition accuracy from {source} ({result['sampler']}, {result['steps']} steps, {result['n']} videos, "
          f"subjects {', '.join(result['subjects'])}): {100 * result['accuracy']:.1f}%")
    for name, v in result["per_class"].items():
        print(f"  {name:<26} {100 * v['accuracy']:5.1f}%  (n={v['n']})")
    if args.out:
        storage.write_text(args.out, json.dumps(result, indent=2))
    return 0


def _run(args) -> int:
    from lfdm.config import from_dict, parse_override_args, with_overrides
    from lfdm.device import pick_device
    from lfdm.io import storage
    from lfdm.runs.evaluation import EvaluationSettings, evaluate, extract_local
    settings = with_overrides(from_dict(EvaluationSettings, {}), parse_override_args(args.set))
    device = pick_device(args.device)
    cache = settings.feature_cache or storage.join(args.out, "feature_cache")
    results = evaluate(args.out, args.data, settings, extract_local(args.data, settings, device), cache_dir=cache,
                       device=device)
    print(json.dumps({k: results[k] for k in ("fvd", "kvd", "cfvd_mean", "sfvd_mean", "condition_accuracy")
                      if k in results}, indent=2))
    return 0
