"""Matplotlib figures for reports, written as PNG to local or s3:// storage (headless Agg backend)."""
from __future__ import annotations

import io

from lfdm.io import storage


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (plots are optional extras)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, uri: str, dpi: int = 110) -> None:
    """Lay out, encode as PNG, write to ``uri`` and close ``fig``."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    storage.write_bytes(uri, buf.getvalue())
