"""lfdm data synth | index | check"""
from __future__ import annotations

import argparse

from lfdm.data.readers import DATASETS


def register(sub) -> None:
    p = sub.add_parser("data", help="build datasets and manifests")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = dsub.add_parser("synth", help="write the synthetic motion dataset (videos + manifest.parquet)")
    s.add_argument("--out", required=True, help="output directory (local path or s3://)")
    s.add_argument("--subjects", type=int, default=8)
    s.add_argument("--test-subjects", type=int, default=2)
    s.add_argument("--videos-per-class", type=int, default=2)
    s.add_argument("--frames", type=int, default=24)
    s.add_argument("--size", type=int, default=64, help="frame height and width")
    s.add_argument("--fps", type=float, default=12.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)

    i = dsub.add_parser("index", help="index an official dataset layout into a manifest")
    i.add_argument("--dataset", required=True, choices=DATASETS)
    i.add_argument("--root", required=True, help="dataset root (for 'manifest': the CSV/Parquet file)")
    i.add_argument("--out", required=True, help="manifest.parquet to write")
    i.add_argument("--segmentation", help="NATOPS segmentation.txt/.json (default: looked up under --root)")
    i.set_defaults(func=_index)


def _synth(args: argparse.Namespace) -> int:
    from lfdm.data.manifest import summary_table
    from lfdm.data.synthetic import SyntheticSpec, write_synthetic_dataset
    from lfdm.io import storage
    spec = SyntheticSpec(num_subjects=args.subjects, test_subjects=args.test_subjects,
                         videos_per_class=args.videos_per_class, num_frames=args.frames,
                         image_size=args.size, fps=args.fps, seed=args.seed)
    manifest = write_synthetic_dataset(args.out, spec)
    print(summary_table(manifest))
    print(f"wrote {len(manifest)} videos and {storage.join(args.out, 'manifest.parquet')}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from lfdm.data.manifest import summary_table, write_manifest
    from lfdm.data.readers import index_dataset
    manifest = index_dataset(args.dataset, args.root, segmentation=args.segmentation)
    write_manifest(manifest, args.out)
    print(summary_table(manifest))
    print(f"wrote {len(manifest)} videos to {args.out}")
    return 0
