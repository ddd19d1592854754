"""How strongly a multilingual embedding pool clusters by language (study question 1's "why").

:func:`language_clustering`: silhouette of the language labels, the share of
IVF cells dominated by one language, purity and entropy of language per
cell, each against shuffled labels.
"""
from __future__ import annotations

import math
from typing import Sequence

import faiss
import numpy as np
import pandas as pd

from lib.errors import ConfigError
from lib.indexes import ivf_nlist


# --------------------------------------------------------------------------
# Language clustering


def _cell_stats(cells: np.ndarray, langs: np.ndarray, n_langs: int, min_cell: int) -> dict[str, float]:
    frame = pd.crosstab(cells, langs)
    frame = frame[frame.sum(1) >= min_cell]
    if frame.empty:
        return {k: float("nan") for k in ("cells_dom50", "cells_dom80", "purity", "cell_entropy")}
    counts = frame.to_numpy(dtype=float)
    size = counts.sum(1)
    share = counts / size[:, None]
    dominant = share.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(share > 0, share * np.log(share), 0.0), axis=1) / math.log(max(n_langs, 2))
    return {"cells_dom50": float((dominant > 0.5).mean()), "cells_dom80": float((dominant > 0.8).mean()),
            "purity": float(np.average(dominant, weights=size)),
            "cell_entropy": float(np.average(ent, weights=size))}


def language_clustering(emb: np.ndarray, langs: Sequence[str], *, nlist: int = 0, sample: int = 3000,
                        min_cell: int = 5, seed: int = 0) -> dict[str, float]:
    """How strongly an embedding pool clusters by language.

    - ``silhouette``: silhouette score of the language labels (cosine, on
      ``sample`` points): near 0 or below for a language-mixed space, up to
      1 for one cluster per language;
    - on ``nlist`` k-means cells (IVF's coarse quantizer; default
      :func:`ivf_nlist`), over cells holding at least ``min_cell`` vectors:
      ``cells_dom50`` / ``cells_dom80`` (share of cells where one language
      holds more than 50% / 80% of the vectors), ``purity`` (mean dominant
      share, weighted by cell size) and ``cell_entropy`` (entropy of the
      language mix, divided by log(number of languages), weighted);
    - the same cell statistics with the labels shuffled (``*_shuffled``):
      what a space blind to language would show with these cell sizes.
    """
    from sklearn.metrics import silhouette_score

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    langs = np.asarray(langs).astype(str)
    if len(emb) != len(langs):
        raise ConfigError(f"language_clustering: {len(emb)} embeddings but {len(langs)} language labels")
    n_langs = len(set(langs))
    if n_langs < 2:
        raise ConfigError("language_clustering needs at least two languages in the pool")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(emb), size=min(sample, len(emb)), replace=False)
    out = {"silhouette": float(silhouette_score(emb[pick], langs[pick], metric="cosine")),
           "n_langs": float(n_langs)}
    nlist = nlist or ivf_nlist(len(emb))
    if not 1 <= nlist <= len(emb):
        raise ConfigError(f"language_clustering: nlist={nlist} must be in 1..{len(emb)} (the pool size)")
    kmeans = faiss.Kmeans(emb.shape[1], nlist, niter=20, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(emb)
    _, cells = kmeans.index.search(emb, 1)
    cells = cells[:, 0]
    out.update(_cell_stats(cells, langs, n_langs, min_cell))
    shuffled = _cell_stats(cells, rng.permutation(langs), n_langs, min_cell)
    out.update({f"{k}_shuffled": v for k, v in shuffled.items()})
    out["nlist"] = float(nlist)
    return out
