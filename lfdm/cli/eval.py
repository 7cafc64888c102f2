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
