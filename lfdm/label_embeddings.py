"""Label-embedding files: a class list and its text embeddings, computed once where the text encoder is
available and carried to where it is not (``lfdm text embed`` writes one; ``lfdm convert official
--text-embeddings`` reads it, so importing official checkpoints needs no network).

Format: safetensors with one tensor ``embeddings`` (n, D) float32 and metadata ``labels`` (JSON list, in the
order of the rows) and ``encoder`` (what computed them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List, Sequence

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lfdm.io import storage


class LabelEmbeddingsError(ValueError):
    """A label-embedding file that is missing, malformed, or does not fit the model."""


@dataclass
class LabelEmbeddings:
    labels: List[str]
    embeddings: torch.Tensor            # (n, D)
    encoder: str

    def check(self, labels: Sequence[str], dim: int, source: str) -> "LabelEmbeddings":
        if list(labels) != self.labels:
            raise LabelEmbeddingsError(f"{source} embeds the labels {self.labels}, not the model's {list(labels)} "
                                       f"(same strings, same order)")
        if self.embeddings.shape != (len(labels), dim):
            raise LabelEmbeddingsError(f"{source} holds {tuple(self.embeddings.shape)} embeddings; the model needs "
                                       f"({len(labels)}, {dim}) (unet.text_dim)")
        return self


def write(uri: str, value: LabelEmbeddings) -> None:
    data = st_save({"embeddings": value.embeddings.detach().float().cpu().contiguous()},
                   metadata={"labels": json.dumps(value.labels), "encoder": value.encoder})
    storage.write_bytes(uri, data)


def read(uri: str) -> LabelEmbeddings:
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError as exc:
        raise LabelEmbeddingsError(f"no label-embedding file at {uri}") from exc
    try:                                # safetensors: 8-byte header length, JSON header with __metadata__
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {})
        tensors = st_load(data)
        return LabelEmbeddings(json.loads(metadata["labels"]), tensors["embeddings"].float(), metadata.get("encoder", ""))
    except Exception as exc:
        raise LabelEmbeddingsError(f"{uri} is not a label-embedding file (lfdm text embed writes them): {exc}") from exc
