"""Figure helpers shared by the report modules and the notebooks.

Every figure of the study is drawn by a function in a ``lib/*_report.py``
module that takes DataFrames (read from the results CSVs) and returns a
matplotlib Figure; the notebooks and ``python -m lib.figures`` save it with
:func:`savefig`. Strategy order, colours and labels come from
:mod:`lib.strategies` through :func:`ordered`, :func:`color` and :func:`label`,
which also accept the arm names of :mod:`lib.paper` (``"hybrid a=0.3"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib
import matplotlib.figure
import matplotlib.pyplot as plt

from lib import strategies
from lib.paths import FIGURES_DIR, atomic_write, figures_dir

MARGIN = 0.01  # the equivalence margin of the verdicts (lib.paper: "matches" = interval within +-0.01)
MARGIN_LABEL = "equivalence margin ±0.01"


def savefig(fig: "matplotlib.figure.Figure", name: str, profile: str, dpi: int = 130,
            close: bool = False) -> Path:
    """Save ``fig`` as ``results/<profile>/figures/<name>.png`` (atomically).

    The ``default`` profile's figures are the study's figures: they are also
    written to the top-level ``figures/`` folder that the README shows.
    ``close`` closes the figure afterwards (batch redraws).
    """
    out = figures_dir(profile) / f"{name}.png"
    targets = [out] + ([FIGURES_DIR / f"{name}.png"] if profile == "default" else [])
    for target in targets:
        with atomic_write(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    if close:
        plt.close(fig)
    return out


# --------------------------------------------------------------------------
# Strategies (and paper arms such as "hybrid a=0.3") in figures


def strategy_of(arm: str) -> str:
    """The registered strategy of an arm or model name ("hybrid a=0.3" -> "hybrid")."""
    arm = str(arm)
    if arm in strategies.names():
        return arm
    head = arm.split(" ")[0]
    return head if head in strategies.names() else arm


def ordered(arms: Iterable[str]) -> list[str]:
    """Distinct arms in the registry's display order (unknown ones last, alphabetically)."""
    return sorted(dict.fromkeys(arms), key=lambda a: (strategies.order_key(strategy_of(a)), str(a)))


def color(arm: str) -> str:
    return strategies.color(strategy_of(arm))


def label(arm: str) -> str:
    """Display label: the registry's label, with the alpha suffix of an arm kept."""
    base = strategy_of(arm)
    text = strategies.label(base)
    rest = str(arm)[len(base):].strip()
    return f"{text} {rest}" if rest and base != arm else text


# --------------------------------------------------------------------------
# Small drawing helpers


def margin_band(ax, margin: float = MARGIN, vertical: bool = False, label_it: bool = True) -> None:
    """Shade the equivalence band [-margin, +margin] and draw the zero line."""
    kw = dict(color="0.85", zorder=0, label=MARGIN_LABEL if label_it else None)
    if vertical:
        ax.axvspan(-margin, margin, **kw)
        ax.axvline(0, color="0.3", lw=0.8, zorder=1)
    else:
        ax.axhspan(-margin, margin, **kw)
        ax.axhline(0, color="0.3", lw=0.8, zorder=1)


def empty_figure(title: str, message: str):
    """A figure that says why there is nothing to draw (instead of a blank or an exception)."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xlabel("(no data)")
    ax.set_ylabel("(no data)")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def legend_outside(fig_axes, anchor_ax) -> None:
    """One legend for every panel (each label once, first handle kept), to the right of ``anchor_ax``."""
    seen = {}
    for ax in fig_axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    anchor_ax.legend(list(seen.values()), list(seen.keys()), loc="upper left", bbox_to_anchor=(1.02, 1),
                     fontsize=8, borderaxespad=0)


def seed_range(n_seeds) -> str:
    """``"3"`` when every arm has 3 seeds, ``"2-3"`` when they differ (for figure titles)."""
    lo, hi = int(min(n_seeds)), int(max(n_seeds))
    return f"{lo}" if lo == hi else f"{lo}-{hi}"

