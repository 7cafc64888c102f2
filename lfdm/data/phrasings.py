"""Phrasings: the sentences that name each class's motion, for training stage 2 on free text.

A phrasing table maps a class label to sentences a user might write for it. Stage 2 draws one sentence per clip
(``text.phrasings``), so a prompt worded differently from the label is not out of distribution. The synthetic
dataset carries its own table; MUG, UTD-MHAD, NATOPS and generic manifests take a YAML or JSON file
``{label: [sentence, ...]}``. Every class's first sentence is its label, whatever the table says; classes the
table leaves out train on their label alone.

``SYNTHETIC_HELD_OUT`` is never trained on: other words and word order, for measuring prompts the model has
not seen (the demo's "held-out prompts" accuracy).
"""
from __future__ import annotations

import json
from typing import Dict, List, Mapping, Sequence

import yaml

from lfdm.io import storage

SYNTHETIC = "synthetic"
MAX_SENTENCES_PER_CLASS = 256

SYNTHETIC_PHRASINGS: Dict[str, List[str]] = {
    "move left": ["move left", "move to the left", "it moves left", "slide left", "go to the left side",
                  "travel leftward", "pan to the left", "the object goes left", "shift left", "drift west"],
    "move right": ["move right", "move to the right", "it moves right", "slide right", "go to the right side",
                   "travel rightward", "pan to the right", "the object goes right", "shift right", "drift east"],
    "move up": ["move up", "move upward", "it moves up", "slide up", "go to the top", "rise", "ascend",
                "the object goes up", "shift up", "climb"],
    "move down": ["move down", "move downward", "it moves down", "slide down", "go to the bottom", "sink", "fall",
                  "the object goes down", "shift down", "drop"],
    "zoom in": ["zoom in", "get bigger", "it grows", "come closer", "enlarge", "scale up", "expand",
                "grow larger", "approach the camera", "increase in size"],
    "zoom out": ["zoom out", "get smaller", "it shrinks", "move away", "reduce in size", "scale down", "contract",
                 "become tiny", "recede from the camera", "decrease in size"],
    "rotate clockwise": ["rotate clockwise", "turn clockwise", "it spins clockwise", "rotate to the right",
                         "twist clockwise", "clockwise rotation", "spin right", "turn in the direction of a clock",
                         "revolve to the right", "a turn to the right"],
    "rotate counterclockwise": ["rotate counterclockwise", "turn counterclockwise", "it spins counterclockwise",
                                "rotate to the left", "twist anticlockwise", "anticlockwise rotation", "spin left",
                                "turn anti-clockwise", "rotate counter clockwise", "a turn to the left"],
    "stay still": ["stay still", "stay in place", "it does not move", "remain motionless", "hold still",
                   "no motion", "be static", "stationary", "do nothing", "keep the same position"],
}

SYNTHETIC_HELD_OUT: Dict[str, List[str]] = {
    "move left": ["shift the shape leftwards", "slide it to the left", "the thing drifts to the left", "head left"],
    "move right": ["shift the shape rightwards", "slide it to the right", "the thing drifts to the right",
                   "head right"],
    "move up": ["lift it upwards", "the shape climbs up", "float up", "raise it higher"],
    "move down": ["drop it downwards", "the shape falls down", "descend", "lower it"],
    "zoom in": ["make it larger", "the shape expands", "magnify it", "bring it nearer"],
    "zoom out": ["make it tinier", "the shape contracts", "shrink it", "push it further away"],
    "rotate clockwise": ["spin it clockwise", "the shape turns clockwise", "a clockwise turn", "revolve clockwise"],
    "rotate counterclockwise": ["spin it counter-clockwise", "the shape turns counter-clockwise",
                                "a counter-clockwise turn", "revolve anticlockwise"],
    "stay still": ["don't move", "keep it motionless", "the shape stays put", "freeze"],
}


class PhrasingError(ValueError):
    """A phrasing table that cannot be read or does not fit the model's classes."""


def phrasings_for(source: str, labels: Sequence[str]) -> Dict[str, List[str]]:
    """label -> its training sentences, label first. ``source``: "" (labels only), "synthetic", or a table's URI."""
    if not source:
        table: Mapping[str, Sequence[str]] = {}
    elif source == SYNTHETIC:               # the dataset's own table; a subset of its classes is fine
        table = {label: s for label, s in SYNTHETIC_PHRASINGS.items() if label in labels}
    else:
        table = read_table(source)
    unknown = sorted(set(table) - set(labels))
    if unknown:
        raise PhrasingError(f"phrasing table {source!r} names classes the data does not have: {unknown}; "
                            f"the classes are {list(labels)}")
    out = {}
    for label in labels:
        sentences = [label] + [s.strip() for s in table.get(label, ()) if s.strip() and s.strip() != label]
        if len(sentences) > MAX_SENTENCES_PER_CLASS:
            raise PhrasingError(f"{source!r}: {len(sentences)} sentences for {label!r}; at most "
                                f"{MAX_SENTENCES_PER_CLASS} per class")
        out[label] = list(dict.fromkeys(sentences))
    return out


def read_table(uri: str) -> Dict[str, List[str]]:
    """A YAML or JSON file {label: [sentence, ...]}."""
    try:
        text = storage.read_text(uri)
    except FileNotFoundError:
        raise PhrasingError(f"no phrasing table at {uri}") from None
    try:
        table = json.loads(text) if uri.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PhrasingError(f"{uri} is not valid {'JSON' if uri.endswith('.json') else 'YAML'}: {exc}") from None
    if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v) for k, v in table.items()):
        raise PhrasingError(f"{uri} must map each class label to a list of sentences, e.g. "
                            f"{{'happiness': ['smile', 'a happy face']}}")
    return table
