"""`make demo` / `lfdm demo`: the whole system end to end on the embedded default.

Stage list grows with the project; today it builds the synthetic dataset and prints its summary.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lfdm demo")
    parser.add_argument("--out", default="demo_runs/default", help="run directory (reused by a second run)")
    args = parser.parse_args(argv)
    from lfdm.data.manifest import read_manifest, summary_table
    from lfdm.data.synthetic import SyntheticSpec, write_synthetic_dataset
    from lfdm.io import storage
    data_dir = storage.join(args.out, "data")
    manifest_uri = storage.join(data_dir, "manifest.parquet")
    if storage.exists(manifest_uri):
        print(f"[data] reusing {manifest_uri}")
        manifest = read_manifest(manifest_uri)
    else:
        manifest = write_synthetic_dataset(data_dir, SyntheticSpec())
    print(summary_table(manifest))
    print(os.path.abspath(manifest_uri))
    return 0


if __name__ == "__main__":
    sys.exit(main())
