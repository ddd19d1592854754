"""The metric registry: the one place that says what a metric is and which datasets report it.

A metric has a name (the ``metric`` column of ``metrics.csv`` and the
value names of ``efficiency.csv``), a label (tables and figures), a
direction (higher is better, or lower: rank distance) and, for the top-k
metrics, ranx's name (``lib.metrics`` and ``lib.indexes`` compute them with
ranx). A dataset family lists the metrics it reports, in report order:

- ``lareqa``: XQuAD-R / MLQA-R with the paper's protocol (``lib.evaluation``);
  ``rank_distance`` only in the multilingual setting;
- ``mlqa_retrieval``: MTEB's MLQARetrieval (``lib.mlqa_retrieval``);
- ``dureader``: DuReader paragraph retrieval through an index (``lib.indexes``);
- ``pool``: a multilingual pool searched through an index (``lib.efficiency``).

Every other module derives its lists from here (``metrics.TOPK_METRICS``,
``mlqa_retrieval.METRICS``, ``indexes.DUREADER_METRICS``, the efficiency
tables' metrics, the paper's Table 1 quantities).
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool = True
    ranx: str | None = None  # ranx's name for a top-k metric; None: computed by lib.metrics itself
    settings: tuple[str, ...] | None = None  # LAReQA settings it is defined in (None: all)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("map", "mAP"),
    Metric("ndcg_at_10", "nDCG@10", ranx="ndcg@10"),
    Metric("mrr_at_10", "MRR@10", ranx="mrr@10"),
    Metric("recall_at_1", "R@1", ranx="recall@1"),
    Metric("recall_at_10", "R@10", ranx="recall@10"),
    Metric("recall_at_50", "R@50", ranx="recall@50"),
    Metric("hit_rate_at_10", "hit rate@10", ranx="hit_rate@10"),
    Metric("rank_distance", "rank distance", higher_is_better=False, settings=("multi",)),
)}

FAMILIES: dict[str, tuple[str, ...]] = {
    "lareqa": ("map", "ndcg_at_10", "mrr_at_10", "recall_at_1", "recall_at_10", "hit_rate_at_10", "rank_distance"),
    "mlqa_retrieval": ("ndcg_at_10", "mrr_at_10", "recall_at_10"),
    "dureader": ("mrr_at_10", "recall_at_1", "recall_at_50", "ndcg_at_10"),
    "pool": ("hit_rate_at_10", "recall_at_10", "ndcg_at_10"),
}


def get(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"metric {name!r} is not registered in lib.metric_registry; known: "
                          f"{', '.join(METRICS)}") from None


def label(name: str) -> str:
    return get(name).label


def higher_is_better(name: str) -> bool:
    return get(name).higher_is_better


def family(name: str) -> tuple[str, ...]:
    """The metrics a dataset family reports, in report order."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"metric family {name!r}: use one of {', '.join(FAMILIES)}") from None


def families_of(name: str) -> tuple[str, ...]:
    """The dataset families that report metric ``name``."""
    get(name)
    return tuple(f for f, names in FAMILIES.items() if name in names)


def ranx_name(name: str) -> str:
    """ranx's name of a top-k metric (``ndcg_at_10`` -> ``ndcg@10``)."""
    metric = get(name)
    if metric.ranx is None:
        raise ConfigError(f"metric {name!r} is not a ranx top-k metric")
    return metric.ranx


def ranx_names(family_name: str) -> dict[str, str]:
    """csv name -> ranx name for the top-k metrics of a family, in report order."""
    return {m: METRICS[m].ranx for m in family(family_name) if METRICS[m].ranx is not None}


def in_setting(name: str, setting: str) -> bool:
    """Whether metric ``name`` is reported in a LAReQA ``setting`` (rank distance: multilingual only)."""
    settings = get(name).settings
    return settings is None or setting in settings
