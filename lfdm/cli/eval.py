"""lfdm eval recon"""
from __future__ import annotations

import json


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
    m.add_argument("--sampler", choices=("ddpm", "ddim", "dpmpp"))
    m.add_argument("--steps", type=int)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--batch", type=int, default=6)
    m.add_argument("--out", help="JSON output")
    m.add_argument("--device")
    m.set_defaults(func=_motion)


def _recon(args) -> int:
    import torch
    from lfdm.io import storage
    from lfdm.pipelines.reconstruction import evaluate_reconstruction
    from lfdm.training.checkpoint import load_lfae
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, ckpt = load_lfae(args.checkpoint, preset=args.preset, device=device)
    result = evaluate_reconstruction(model, args.data, args.split, image_size=ckpt.config.data.image_size,
                                     device=device, max_videos=args.max_videos)
    result["checkpoint"] = args.checkpoint
    out = args.out or storage.join(args.checkpoint, f"recon_{args.split}.json")
    storage.write_text(out, json.dumps(result, indent=2))
    print(f"LFAE reconstruction L1 ({args.split}, {result['videos']} videos, {result['frames']} frames): "
          f"{result['lfae_l1']:.5f}")
    print(f"copy-the-source baseline L1:                             {result['copy_source_l1']:.5f}")
    print(f"ratio LFAE / copy: {result['relative_to_copy']:.3f}   -> {out}")
    return 0


def _fvd(args) -> int:
    import numpy as np
    import torch
    from lfdm.cli import CommandError
    from lfdm.metrics.fvd import FVDProtocol, bootstrap_fvd, extract_features, fvd_kvd
    from lfdm.metrics.i3d_weights import WeightsError, load_detector
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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
    protocol = FVDProtocol(num_frames=int(arrays["real"].shape[1]), weights=weights_id)
    if args.unscaled:
        protocol = FVDProtocol(num_frames=protocol.num_frames, weights=weights_id, value_range="fed as is (--unscaled)")
    result["protocol"] = {**protocol.__dict__, "hash": protocol.digest()}
    print(json.dumps(result, indent=2))
    return 0


def _motion(args) -> int:
    import torch
    from lfdm.io import storage
    from lfdm.pipelines.image_to_video import load_pipeline
    from lfdm.pipelines.motion_eval import evaluate_motion
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = evaluate_motion(load_pipeline(args.checkpoint, device), args.data, num_videos=args.num_videos,
                             split=args.split, seed=args.seed, sampler=args.sampler, steps=args.steps, batch=args.batch)
    print(f"condition accuracy ({result['sampler']}, {result['steps']} steps, {result['n']} videos, "
          f"subjects {', '.join(result['subjects'])}): {100 * result['accuracy']:.1f}%")
    for name, v in result["per_class"].items():
        print(f"  {name:<26} {100 * v['accuracy']:5.1f}%  (n={v['n']})")
    if args.out:
        storage.write_text(args.out, json.dumps(result, indent=2))
    return 0
