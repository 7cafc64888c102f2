"""lfdm flows precompute"""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("flows", help="stage-2 flow cache")
    fsub = p.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    c = fsub.add_parser("precompute", help="flows, occlusions and z0 of every video by the frozen auto-encoder")
    c.add_argument("--lfae", required=True, help="stage-1 checkpoint")
    c.add_argument("--data", required=True, help="manifest.parquet")
    c.add_argument("--out", required=True, help="cache directory (finished shards are kept on rerun)")
    c.add_argument("--split", help="only this split (default: all)")
    c.add_argument("--shard-size", type=int, default=16)
    c.add_argument("--device")
    c.set_defaults(func=_precompute)


def _precompute(args) -> int:
    from lfdm.training.flow_cache import precompute_local
    result = precompute_local(args.lfae, args.data, args.out, shard_size=args.shard_size, split=args.split,
                              device=args.device)
    print(json.dumps(result, indent=2))
    return 0
