"""The ``lfdm`` command. Each command group lives in its own module with a ``register`` function."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

GROUPS = ("data", "model", "train", "convert", "eval", "flows", "generate", "weights", "launch")
LAUNCHERS = {"demo": "ray_jobs.demo", "serve": "serve"}   # replaced by `python -m MODULE`, never imported


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfdm", description="Latent flow diffusion models (CVPR 2023)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        importlib.import_module(f"lfdm.cli.{group}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in LAUNCHERS:
        from lfdm.cli.launch import exec_module
        return exec_module(LAUNCHERS[argv[0]], argv[1:])
    args = build_parser().parse_args(argv)
    from lfdm.checkpoint import CheckpointError
    from lfdm.config import ConfigError
    from lfdm.data.manifest import ManifestError
    from lfdm.data.readers import LayoutError
    from lfdm.io.video import VideoError
    from lfdm.data.phrasings import PhrasingError
    from lfdm.label_embeddings import LabelEmbeddingsError
    from lfdm.models.text import TextEncoderError
    from lfdm.runs import RunError
    from lfdm.training.flow_cache import FlowCacheError
    known = (CommandError, ConfigError, ManifestError, LayoutError, VideoError, FileNotFoundError, CheckpointError,
             FlowCacheError, TextEncoderError, RunError, LabelEmbeddingsError, PhrasingError)
    try:
        return int(args.func(args) or 0)
    except known as exc:
        print(f"lfdm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
