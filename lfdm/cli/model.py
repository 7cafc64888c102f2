"""lfdm model info"""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("model", help="inspect model architectures")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    i = msub.add_parser("info", help="parameter counts of each module of a preset, as JSON")
    i.add_argument("--preset", required=True)
    i.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE")
    i.set_defaults(func=_info)


def module_parameter_counts(cfg) -> dict:
    from lfdm.models.autoencoder import LatentFlowAutoencoder, parameter_counts
    from lfdm.models.unet3d import UNet3D
    counts = parameter_counts(LatentFlowAutoencoder(cfg.autoencoder))
    counts["unet"] = sum(p.numel() for p in UNet3D(cfg.unet).parameters())
    return counts


def _info(args) -> int:
    from lfdm.config import parse_override_args
    from lfdm.presets import get_preset
    cfg = get_preset(args.preset, parse_override_args(args.override))
    print(json.dumps({"preset": cfg.name, "parameters": module_parameter_counts(cfg)}, indent=2))
    return 0
