"""Figure helpers shared by the notebooks."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from lib.paths import FIGURES_DIR, figures_dir


def savefig(fig: "matplotlib.figure.Figure", name: str, profile: str, dpi: int = 130) -> Path:
    """Save ``fig`` as ``results/<profile>/figures/<name>.png``.

    The ``default`` profile's figures are the study's figures: they are also
    written to the top-level ``figures/`` folder that the README shows.
    """
    out = figures_dir(profile) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    if profile == "default":
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        fig.savefig(FIGURES_DIR / f"{name}.png", dpi=dpi, bbox_inches="tight")
    return out
