"""lfdm convert official"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("convert", help="import foreign checkpoints")
    csub = p.add_subparsers(dest="convert_command", required=True, metavar="SOURCE")
    o = csub.add_parser("official", help="official LFDM .pth files (weights_only load)")
    o.add_argument("--lfae", required=True, help="official LFAE checkpoint (generator, region_predictor, bg_predictor)")
    o.add_argument("--dm", help="official DM checkpoint (key 'diffusion'); makes a full generation checkpoint")
    o.add_argument("--preset", required=True, help="mug128, mhad128 or natops128")
    o.add_argument("--out", required=True)
    o.add_argument("--text-encoder", help="BERT-family model (hub id or folder) for the label embeddings "
                                           "(default: the preset's, bert-base-cased)")
    o.set_defaults(func=_official)


def _official(args) -> int:
    from lfdm.convert import import_official
    from lfdm.presets import get_preset
    cfg = get_preset(args.preset)
    labels = embeddings = None
    if args.dm:
        from lfdm.data.catalog import classes_for_preset
        from lfdm.models.text import embed_labels
        labels = list(classes_for_preset(args.preset))
        embeddings = embed_labels(labels, args.text_encoder or cfg.text.encoder)
    out = import_official(cfg, args.out, lfae_path=args.lfae, dm_path=args.dm, labels=labels,
                          text_embeddings=embeddings)
    print(out)
    return 0
