"""lfdm convert official | lfdm text embed"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("convert", help="import foreign checkpoints")
    csub = p.add_subparsers(dest="convert_command", required=True, metavar="SOURCE")
    o = csub.add_parser("official", help="official LFDM .pth files (weights_only load)")
    o.add_argument("--lfae", required=True, help="official LFAE checkpoint (generator, region_predictor, bg_predictor)")
    o.add_argument("--dm", help="official DM checkpoint (key 'diffusion'); makes a full generation checkpoint")
    o.add_argument("--preset", required=True, help="mug128, mhad128 or natops128")
    o.add_argument("--out", required=True)
    text = o.add_mutually_exclusive_group()
    text.add_argument("--text-embeddings", help="label-embedding file made by `lfdm text embed` (no network needed)")
    text.add_argument("--text-encoder", help="BERT-family model (hub id or folder) to embed the labels now "
                                             "(default: the preset's, bert-base-cased)")
    o.set_defaults(func=_official)

    t = sub.add_parser("text", help="label text embeddings")
    tsub = t.add_subparsers(dest="text_command", required=True, metavar="ACTION")
    e = tsub.add_parser("embed", help="embed a preset's class labels once (where the encoder is available) into a "
                                      "file that `lfdm convert official --text-embeddings` reads offline")
    e.add_argument("--preset", required=True, help="its dataset's labels and text settings (mug128, natops128, ...)")
    e.add_argument("--encoder", help="hub id or local folder (default: the preset's text.encoder)")
    e.add_argument("--out", required=True, help=".safetensors file")
    e.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides (text.*, unet.text_dim)")
    e.set_defaults(func=_embed)


def _official(args) -> int:
    from lfdm import label_embeddings
    from lfdm.cli import CommandError
    from lfdm.convert import import_official
    from lfdm.data.catalog import classes_for_preset
    from lfdm.models.text import TextEncoderError, condition_embeddings
    from lfdm.presets import get_preset
    cfg = get_preset(args.preset)
    labels = embeddings = None
    if args.dm:
        labels = list(classes_for_preset(args.preset))
        if args.text_embeddings:
            embeddings = label_embeddings.read(args.text_embeddings).check(
                labels, cfg.unet.text_dim, args.text_embeddings).embeddings
        else:
            text = cfg.text if not args.text_encoder else _with_encoder(cfg.text, args.text_encoder)
            try:
                embeddings = condition_embeddings(text, labels, cfg.unet.text_dim)
            except TextEncoderError as exc:
                raise CommandError(
                    f"{exc}. To import offline, embed the labels once on a machine that has the encoder: "
                    f"`lfdm text embed --preset {args.preset} --out {args.preset}_labels.safetensors`, then pass "
                    f"--text-embeddings {args.preset}_labels.safetensors") from None
    print(import_official(cfg, args.out, lfae_path=args.lfae, dm_path=args.dm, labels=labels,
                          text_embeddings=embeddings))
    return 0


def _with_encoder(text_cfg, encoder: str):
    import dataclasses
    return dataclasses.replace(text_cfg, encoder=encoder)


def _embed(args) -> int:
    from lfdm import label_embeddings
    from lfdm.data.catalog import classes_for_preset
    from lfdm.config import parse_override_args
    from lfdm.models.text import condition_embeddings
    from lfdm.presets import get_preset
    cfg = get_preset(args.preset, parse_override_args(args.override))
    text = cfg.text if not args.encoder else _with_encoder(cfg.text, args.encoder)
    labels = list(classes_for_preset(args.preset))
    embeddings = condition_embeddings(text, labels, cfg.unet.text_dim)
    label_embeddings.write(args.out, label_embeddings.LabelEmbeddings(labels, embeddings, text.encoder))
    print(f"{len(labels)} labels x {embeddings.shape[1]} ({text.encoder}) -> {args.out}")
    return 0
