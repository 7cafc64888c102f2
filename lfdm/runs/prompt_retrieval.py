"""The text encoder's share of prompt accuracy: which class a prompt's condition lies nearest to, before any
diffusion. A prompt that retrieves the wrong class here cannot be generated right; one that retrieves the right
class and still fails is the diffusion model's miss.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
from torch.nn.functional import normalize

from lfdm.data.phrasings import phrasings_for
from lfdm.metrics.accuracy import per_class_accuracy
from lfdm.models.text import run_conditions
from lfdm.pipelines.image_to_video import ImageToVideoPipeline


def prompt_retrieval(pipe: ImageToVideoPipeline, prompts: Mapping[str, Sequence[str]]) -> Dict[str, dict]:
    """Nearest class by cosine of each prompt's condition, against (a) the mean condition of each class's training
    sentences (what stage 2 learned a class to be) and (b) each label's own condition. ``prompts``: {class: [...]}."""
    labels = list(pipe.labels)
    expected = [labels.index(label) for label, texts in prompts.items() for _ in texts]
    conditions = normalize(pipe.prompt_encoder([t for texts in prompts.values() for t in texts]).float(), dim=1)
    text = pipe.config.text
    run = run_conditions(text, labels, pipe.config.unet.text_dim, phrasings_for(text.phrasings, labels))
    means = torch.stack([run.phrasing_embeddings[run.phrasing_classes == c].mean(0) for c in range(len(labels))])
    references = {"class_means": means, "labels": pipe.text_embeddings.cpu()}
    return {name: per_class_accuracy((conditions @ normalize(ref.float(), dim=1).T).argmax(1).tolist(), expected,
                                     labels)
            for name, ref in references.items()}
