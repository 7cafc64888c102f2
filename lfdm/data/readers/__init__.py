"""Readers that index official on-disk layouts into a Manifest (docs/design.md, "Contracts")."""
from __future__ import annotations

from typing import Optional

from lfdm.data.manifest import Manifest

DATASETS = ("mug", "mhad", "natops", "manifest")


class LayoutError(ValueError):
    """The directory does not hold the layout the chosen reader expects."""


def index_dataset(dataset: str, root: str, *, segmentation: Optional[str] = None,
                  progress: bool = True) -> Manifest:
    if dataset == "mug":
        from lfdm.data.readers.mug import index_mug
        return index_mug(root, progress=progress)
    if dataset == "mhad":
        from lfdm.data.readers.mhad import index_mhad
        return index_mhad(root, progress=progress)
    if dataset == "natops":
        from lfdm.data.readers.natops import index_natops
        return index_natops(root, segmentation=segmentation, progress=progress)
    if dataset == "manifest":
        from lfdm.data.readers.generic import index_table
        return index_table(root, progress=progress)
    raise LayoutError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
