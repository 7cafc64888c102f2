"""The text encoder's share of prompt accuracy: which class a prompt's condition lies nearest to, before any
diffusion. A prompt that retrieves the wrong class here cannot be generated right; one that retrieves the right
class and still fails is the diffusion model's miss.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
from torch.nn.functional import normalize

from lfdm.metrics.accuracy import per_class_accuracy
from lfdm.models.prompt_projection import sentence_posterior
from lfdm.models.text_map import class_means
from lfdm.pipelines.image_to_video import ImageToVideoPipeline


def prompt_retrieval(pipe: ImageToVideoPipeline, prompts: Mapping[str, Sequence[str]]) -> Dict[str, dict]:
    """Nearest class by cosine of each prompt's condition, against (a) the mean condition of each class's training
    sentences (what stage 2 learned a class to be) and (b) each label's own condition; with stage 2's condition
    noise on, also (c) the class whose training sentences carry the most posterior weight under that noise (where
    ``sample.prompt_projection`` moves the prompt). ``prompts``: {class: [...]}."""
    labels = list(pipe.labels)
    expected = [labels.index(label) for label, texts in prompts.items() for _ in texts]
    raw = pipe.prompt_encoder([t for texts in prompts.values() for t in texts]).float()
    conditions = normalize(raw, dim=1)
    sentences, classes = (t.cpu() for t in pipe.training_sentences())
    means = class_means(sentences, classes, len(labels))
    references = {"class_means": means, "labels": pipe.text_embeddings.cpu()}
    found = {name: (conditions @ normalize(ref.float(), dim=1).T).argmax(1).tolist()
             for name, ref in references.items()}
    if pipe.config.text.condition_noise > 0:
        weights = sentence_posterior(raw, sentences, pipe.condition_noise_std())          # (B, P)
        per_class = torch.zeros(len(expected), len(labels), dtype=weights.dtype).index_add_(1, classes, weights)
        found["sentence_posterior"] = per_class.argmax(1).tolist()
    return {name: per_class_accuracy(found_classes, expected, labels) for name, found_classes in found.items()}
