"""Which training pairs share a batch: the mono, cross and hybrid strategies.

With in-batch negatives the batch composition *is* the experiment, so every
strategy follows one small contract (:class:`BatchSampler`):

- ``mono`` (X-X-mono): the whole batch is one language, question and passage
  both in it (``query_lang == doc_lang``). The batch language is drawn
  uniformly among the languages with monolingual pairs in the batch's dataset.
- ``cross`` (X-Y): every pair has ``query_lang != doc_lang`` (parallel data).
- ``hybrid``: each batch is ``mono`` with probability ``alpha``, else ``cross``.

Each batch comes from one dataset. With ``dataset_choice="size"`` the dataset
is drawn with probability proportional to its *size for that kind of batch*:
the number of training pairs of that kind it holds (mono: rows with
``query_lang == doc_lang``; cross: rows with ``query_lang != doc_lang``),
counting only pools large enough to fill a batch.
Datasets without pairs of a kind never serve that kind (TyDi, not parallel,
serves only mono batches). ``dataset_choice="uniform"`` gives every eligible
dataset the same chance.

No two pairs of one parallel item (same ``item_id``) share a batch, so
translations never serve as each other's negatives; identical passages are
kept apart too.

Batches are computed up front, one epoch at a time, from one numpy Generator
seeded with ``(seed, epoch)``. An *epoch* is a fixed number of batches
(:attr:`BatchSampler.steps_per_epoch`, by default as many full batches as
the strategy's usable training pairs fill once). Within an epoch each pool
(one dataset + kind + language) is served from a shuffled queue, so a pair
comes back only after its whole pool was served. ``batches(steps)`` chains
epochs 0, 1, ... and is what training uses.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from lib import strategies
from lib.errors import ConfigError, DataError

DATASET_CHOICES = ("size", "uniform")
KINDS = ("mono", "cross")
REQUIRED_COLUMNS = ("dataset", "item_id", "query_lang", "doc_lang")
BATCH_COLUMNS = ["step", "batch_kind", "dataset", "item_id", "query_lang", "doc_lang"]


@dataclass(frozen=True)
class Batch:
    """One training batch: row positions of ``pairs`` and how it was drawn."""

    indices: tuple[int, ...]  # row positions (iloc) in the sampler's ``pairs``
    kind: str  # "mono" or "cross"
    dataset: str  # the source dataset of every pair of the batch
    language: str | None = None  # the batch language for mono batches, None for cross

    def __len__(self) -> int:
        return len(self.indices)


def check_options(strategy: str, batch_size: int, alpha: float, seed: int, dataset_choice: str) -> None:
    """Raise ConfigError on a bad sampling option (shared with TrainConfig)."""
    if strategy not in strategies.trained_names():
        raise ConfigError(f"strategy={strategy!r}: use one of {', '.join(strategies.trained_names())}")
    strategies.check_alpha(alpha)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ConfigError(f"batch_size={batch_size!r}: use an integer >= 2 (in-batch negatives need a second pair)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: use a non-negative integer")
    if dataset_choice not in DATASET_CHOICES:
        raise ConfigError(f"dataset_choice={dataset_choice!r}: use 'size' (proportional to the number of "
                          "training pairs of the batch's kind) or 'uniform'")


class BatchSampler:
    """Seeded batches of ``pairs`` for one strategy (see the module docstring).

    ``pairs`` has at least ``dataset, item_id, query_lang, doc_lang`` (and
    usually ``passage`` and ``split``). Only rows whose ``split`` equals
    ``split`` are sampled (all rows when ``split`` is None or the column is
    absent); batch indices are row positions in ``pairs`` as given.

    A pool (dataset, kind, language) with fewer distinct items or passages
    than ``batch_size`` cannot fill one batch: with ``small_pools="skip"``
    (default) it is left out with a warning and listed in ``skipped``
    (e.g. TyDi bn, 97 distinct passages, at batch size 100); with
    ``"error"`` it raises ConfigError. A strategy left with no pool for a
    kind it needs raises ConfigError either way.
    """

    def __init__(self, pairs: pd.DataFrame, strategy: str, batch_size: int, alpha: float = 0.5,
                 seed: int = 0, dataset_choice: str = "size", split: str | None = "train",
                 steps_per_epoch: int | None = None, small_pools: str = "skip"):
        check_options(strategy, batch_size, alpha, seed, dataset_choice)
        if small_pools not in ("skip", "error"):
            raise ConfigError(f"small_pools={small_pools!r}: use 'skip' or 'error'")
        missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
        if missing:
            raise DataError(f"training pairs lack column(s) {missing}; expected the columns of "
                            "lib.training_data.load_training_pairs")
        self.pairs = pairs
        self.strategy, self.batch_size, self.alpha = strategy, int(batch_size), float(alpha)
        self.seed, self.dataset_choice, self.split = int(seed), dataset_choice, split
        self.epoch = 0
        self._items = pd.factorize(pairs["item_id"].astype(str))[0]
        texts = pairs["passage"] if "passage" in pairs.columns else pd.Series(np.arange(len(pairs)))
        self._passages = pd.factorize(texts)[0]
        self._pools = self._build_pools()
        self._kinds = [k for k in KINDS if self._kind_needed(k)]
        self._check_pools(small_pools)
        usable = sum(len(rows) for (d, k, l), rows in self._pools.items() if k in self._kinds)
        if steps_per_epoch is None:
            steps_per_epoch = max(1, usable // self.batch_size)
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, (int, np.integer)) \
                or steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch={steps_per_epoch!r}: use a positive integer or None")
        self.steps_per_epoch = int(steps_per_epoch)
        self._cache: dict[int, list[Batch]] = {}

    # ------------------------------------------------------------------ pools

    def _kind_needed(self, kind: str) -> bool:
        share = strategies.mono_share(self.strategy, self.alpha)
        return share > 0.0 if kind == "mono" else share < 1.0

    def _build_pools(self) -> dict[tuple[str, str, str | None], np.ndarray]:
        """Row positions per (dataset, kind, language); language is None for cross pools."""
        p = self.pairs
        keep = np.ones(len(p), dtype=bool)
        if self.split is not None and "split" in p.columns:
            keep = (p["split"] == self.split).to_numpy()
        same = (p["query_lang"] == p["doc_lang"]).to_numpy()
        frame = pd.DataFrame({"dataset": p["dataset"].to_numpy(), "lang": p["query_lang"].to_numpy(),
                              "mono": same, "row": np.arange(len(p))})[keep]
        pools: dict[tuple[str, str, str | None], np.ndarray] = {}
        for (dataset, lang), g in frame[frame["mono"]].groupby(["dataset", "lang"], sort=True):
            pools[(str(dataset), "mono", str(lang))] = g["row"].to_numpy()
        for dataset, g in frame[~frame["mono"]].groupby("dataset", sort=True):
            pools[(str(dataset), "cross", None)] = g["row"].to_numpy()
        return pools

    def _check_pools(self, small_pools: str) -> None:
        """Every needed kind has a pool; pools too small for one batch are skipped (or an error)."""
        where = f"the '{self.split}' split" if self.split is not None else "the pairs"
        for kind in self._kinds:
            if not any(k == kind for _, k, _ in self._pools):
                need = ("pairs with query_lang == doc_lang" if kind == "mono" else
                        "pairs with query_lang != doc_lang (parallel data such as mlqa_test)")
                raise ConfigError(f"strategy={self.strategy!r} (alpha={self.alpha:g}) needs {kind} batches, but "
                                  f"{where} has no {need}; pick another strategy or add such data")
        self.skipped = []
        for (dataset, kind, lang), rows in list(self._pools.items()):
            distinct = min(len(np.unique(self._items[rows])), len(np.unique(self._passages[rows])))
            if kind not in self._kinds or distinct >= self.batch_size:
                continue
            what = f"language {lang!r}" if kind == "mono" else "cross-lingual pairs"
            message = (f"batch_size={self.batch_size} is larger than the {kind} pool of dataset {dataset!r}, "
                       f"{what}: {len(rows)} pairs in {where} with only {distinct} distinct items/passages")
            if small_pools == "error":
                raise ConfigError(message + ". Lower batch_size or use more data (raise max_items, 0 = all)")
            self.skipped.append({"dataset": dataset, "kind": kind, "language": lang, "pairs": len(rows),
                                 "distinct": distinct})
            del self._pools[(dataset, kind, lang)]
        for kind in self._kinds:
            if not any(k == kind for _, k, _ in self._pools):
                raise ConfigError(f"strategy={self.strategy!r} needs {kind} batches, but every {kind} pool of "
                                  f"{where} is smaller than batch_size={self.batch_size} ({self.skipped}); lower "
                                  "batch_size or use more data (raise max_items, 0 = all)")
        if self.skipped:
            names = ", ".join(f"{s['dataset']}/{s['kind']}/{s['language'] or 'all'} ({s['distinct']})"
                              for s in self.skipped)
            warnings.warn(f"batch_size={self.batch_size}: these pools cannot fill one batch with distinct items "
                          f"and passages and are left out: {names}", stacklevel=3)

    def _weights(self, kind: str) -> tuple[list[str], np.ndarray]:
        """Eligible datasets for ``kind`` and their choice probabilities."""
        sizes: dict[str, int] = {}
        for (dataset, k, _), rows in self._pools.items():
            if k == kind:
                sizes[dataset] = sizes.get(dataset, 0) + len(rows)
        names = sorted(sizes)
        w = np.array([sizes[n] for n in names], dtype=float) if self.dataset_choice == "size" \
            else np.ones(len(names))
        return names, w / w.sum()

    def dataset_probabilities(self) -> pd.DataFrame:
        """Table ``kind, dataset, pairs, probability``: how each batch's dataset is chosen."""
        rows = []
        for kind in self._kinds:
            names, probs = self._weights(kind)
            for name, prob in zip(names, probs):
                n = sum(len(r) for (d, k, _), r in self._pools.items() if d == name and k == kind)
                rows.append({"kind": kind, "dataset": name, "pairs": n, "probability": prob})
        return pd.DataFrame(rows, columns=["kind", "dataset", "pairs", "probability"])

    # --------------------------------------------------------------- batches

    def _take(self, key, queues: dict, rng: np.random.Generator) -> list[int]:
        """Next ``batch_size`` rows of one pool's queue with distinct items and passages.

        Rows skipped for a clash go back to the front of the queue; an empty
        queue is refilled with a fresh permutation of the pool.
        """
        pool = self._pools[key]
        queue = queues[key] if key in queues else rng.permutation(pool)
        chosen: list[int] = []
        items: set[int] = set()
        passages: set[int] = set()
        skipped: list[int] = []
        pos, refilled = 0, False
        while len(chosen) < self.batch_size:
            if pos == len(queue):
                if refilled:
                    raise ConfigError(f"cannot fill a batch of {self.batch_size} distinct items from pool {key}; "
                                      "lower batch_size")
                queue, refilled = np.concatenate([queue, rng.permutation(pool)]), True
            row = int(queue[pos])
            pos += 1
            if self._items[row] in items or self._passages[row] in passages:
                skipped.append(row)
                continue
            chosen.append(row)
            items.add(self._items[row])
            passages.add(self._passages[row])
        queues[key] = np.concatenate([np.asarray(skipped, dtype=np.int64), queue[pos:]])
        return chosen

    def epoch_batches(self, epoch: int) -> list[Batch]:
        """The ``steps_per_epoch`` batches of ``epoch``, a pure function of (seed, epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ConfigError(f"epoch={epoch!r}: use a non-negative integer")
        if epoch in self._cache:
            return list(self._cache[epoch])
        rng = np.random.default_rng([self.seed, int(epoch)])
        share = strategies.mono_share(self.strategy, self.alpha)
        choices = {k: self._weights(k) for k in self._kinds}
        langs: dict[str, list[str]] = {}
        for dataset, kind, lang in self._pools:
            if kind == "mono":
                langs.setdefault(dataset, []).append(lang)
        queues: dict = {}
        out = []
        for _ in range(self.steps_per_epoch):
            kind = "mono" if rng.random() < share else "cross"
            names, probs = choices[kind]
            dataset = names[int(rng.choice(len(names), p=probs))]
            lang = None
            if kind == "mono":
                options = sorted(langs[dataset])
                lang = options[int(rng.integers(len(options)))]
            rows = self._take((dataset, kind, lang), queues, rng)
            out.append(Batch(tuple(rows), kind, dataset, lang))
        self._cache = {epoch: out}
        return list(out)

    def batches(self, steps: int) -> list[Batch]:
        """The first ``steps`` batches of epochs 0, 1, 2, ... (what training consumes)."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ConfigError(f"steps={steps!r}: use a non-negative integer")
        out: list[Batch] = []
        epoch = 0
        while len(out) < steps:
            out.extend(self.epoch_batches(epoch)[: steps - len(out)])
            epoch += 1
        return out

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that ``iter(sampler)`` yields."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.epoch_batches(self.epoch))

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __repr__(self) -> str:
        return (f"BatchSampler(strategy={self.strategy!r}, batch_size={self.batch_size}, alpha={self.alpha:g}, "
                f"seed={self.seed}, dataset_choice={self.dataset_choice!r}, steps_per_epoch={self.steps_per_epoch})")


def batches_frame(pairs: pd.DataFrame, batches: list[Batch], first_step: int = 1) -> pd.DataFrame:
    """One row per sampled pair: ``step, batch_kind, dataset, item_id, query_lang, doc_lang``.

    Steps count from ``first_step``; this is the layout of ``batches.csv``.
    """
    if not batches:
        return pd.DataFrame(columns=BATCH_COLUMNS)
    rows = np.concatenate([np.asarray(b.indices, dtype=np.int64) for b in batches])
    sizes = [len(b) for b in batches]
    sub = pairs.iloc[rows]
    return pd.DataFrame({
        "step": np.repeat(np.arange(first_step, first_step + len(batches)), sizes),
        "batch_kind": np.repeat([b.kind for b in batches], sizes),
        "dataset": np.repeat([b.dataset for b in batches], sizes),
        "item_id": sub["item_id"].astype(str).to_numpy(),
        "query_lang": sub["query_lang"].to_numpy(),
        "doc_lang": sub["doc_lang"].to_numpy(),
    })


def batch_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per step of a :func:`batches_frame`: kind, dataset, size, languages per batch, mono pair share."""
    g = frame.assign(same=frame["query_lang"] == frame["doc_lang"]).groupby("step", sort=True)
    return pd.DataFrame({
        "batch_kind": g["batch_kind"].first(),
        "dataset": g["dataset"].first(),
        "pairs": g.size(),
        "query_langs": g["query_lang"].nunique(),
        "doc_langs": g["doc_lang"].nunique(),
        "mono_pair_share": g["same"].mean(),
    }).reset_index()


def validation_batches(pairs: pd.DataFrame, batch_size: int, max_pairs: int = 0, split: str = "val",
                       seed: int = 0) -> list[tuple[int, ...]]:
    """Fixed validation batches (row positions) drawn from the rows of ``split``.

    The same for every strategy and training seed, so validation losses are
    comparable between runs: up to ``max_pairs`` rows (0 = all) taken in a
    fixed shuffled order, packed first-fit into batches of ``batch_size``
    without a repeated item or passage. Batches mix kinds and languages
    (a multilingual loss); a last batch of fewer than 2 pairs is dropped.
    """
    if "split" not in pairs.columns:
        return []
    rows = np.flatnonzero((pairs["split"] == split).to_numpy())
    rows = np.random.default_rng([seed, 1]).permutation(rows)
    if max_pairs:
        rows = rows[:max_pairs]
    items = pd.factorize(pairs["item_id"].astype(str))[0]
    texts = pairs["passage"] if "passage" in pairs.columns else pd.Series(np.arange(len(pairs)))
    passages = pd.factorize(texts)[0]
    open_batches: list[tuple[list[int], set, set]] = []
    for row in rows:
        for members, its, pas in open_batches:
            if len(members) < batch_size and items[row] not in its and passages[row] not in pas:
                break
        else:
            members, its, pas = [], set(), set()
            open_batches.append((members, its, pas))
        members.append(int(row))
        its.add(items[row])
        pas.add(passages[row])
    return [tuple(m) for m, _, _ in open_batches if len(m) >= 2]


def language_matrix(frame: pd.DataFrame, langs: list[str] | None = None) -> pd.DataFrame:
    """Share of the pairs of a :func:`batches_frame` per question language (rows) x passage language."""
    langs = langs or sorted(set(frame["query_lang"]) | set(frame["doc_lang"]))
    table = pd.crosstab(frame["query_lang"], frame["doc_lang"], normalize="all")
    return table.reindex(index=langs, columns=langs, fill_value=0.0).fillna(0.0)
