"""Runs of the ``mteb`` package, and mteb's scores checked against the local MLQARetrieval.

The ``mteb`` package (optional, ``requirements-mteb.txt``, tested with
2.26) runs the same encoder through ``lib.mteb_adapter.MtebEncoder``, whose
``mteb_model_meta`` (``mteb.models.ModelMeta``) names the model
``hybrid-batch-study/<name>`` with a weights-fingerprint revision
(``lib.mteb_adapter.model_revision``), so mteb files results under that name. Offline,
:func:`local_mlqa_task` builds the 49 subsets as an ``AbsTaskRetrieval``
and :func:`mteb_agreement` compares mteb's nDCG@10 with the local one
(``benchmarks/mteb_agreement.py``, notebook 07's last cell). With a
network, :func:`run_mteb` also runs hub tasks (MLQARetrieval,
BelebeleRetrieval, XPQARetrieval) and :func:`compare_with_mteb` checks the
local MLQARetrieval against the hub's.

The local MLQARetrieval itself (subsets, ranking, metrics, result files) is
:mod:`lib.mlqa_retrieval`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from lib.data import load_mlqa_retrieval
from lib.errors import DataError, StudyError
from lib.mlqa_retrieval import (MAIN_METRIC, SPLIT, check_subsets, doc_ids, evaluate_mlqa_retrieval,
                                mteb_subset_name, mteb_view, parse_subset_name, tie_metric_range, views)
from lib.mteb_adapter import EmbeddingMemo, MtebEncoder, model_meta
from lib.paths import CACHE_DIR, atomic_write
from lib.settings import offline_flags

MTEB_TASKS = ("MLQARetrieval", "BelebeleRetrieval", "XPQARetrieval")
# Agreement of compare_with_mteb: per subset |local - mteb| nDCG@10 at most MAX, mean over subsets at most MEAN.
# Same encoder and texts on both sides, so only float noise (bf16 with other batch shapes) and
# mteb's 5-decimal rounding remain; a wrong subset construction moves values by 0.05 and more.
COMPARE_TOLERANCE = {"max_abs_diff": 0.01, "mean_abs_diff": 0.002}
# mteb_agreement: a subset agrees exactly when |round(local, 5) - mteb| <= EXACT (float representation only);
# candidates whose scores are at most TIE_TOL apart count as near-tied (float32 summation order moves a
# cosine by about 1e-7).
EXACT = 1e-6
TIE_TOL = 1e-6


def _import_mteb(local: bool = False):
    """Import mteb or raise a StudyError saying what to install (mteb is optional here)."""
    if importlib.util.find_spec("mteb") is None:
        raise StudyError("the 'mteb' package is not installed: pip install -r requirements-mteb.txt"
                         + ("" if local else " (hub tasks download their data from the Hugging Face hub, so they "
                            "need a network). Offline, use lib.mlqa_retrieval.evaluate_mlqa_retrieval, the local "
                            "MLQARetrieval"))
    import mteb

    return mteb


def _mteb_version() -> str:
    """The installed mteb's version, "?" without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mteb")
    except PackageNotFoundError:
        return "?"


@contextlib.contextmanager
def _env(name: str, value: str | None):
    """Set an environment variable for a block (None: leave it as it is)."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


@contextlib.contextmanager
def _datasets_progress(show: bool):
    """Hide the ``datasets`` progress bars mteb's data preparation prints (one per subset) unless asked."""
    try:
        import datasets
        was = datasets.is_progress_bar_enabled()
    except (ImportError, AttributeError):
        yield
        return
    if not show:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def _looks_like_network_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    names = {type(e).__name__ for e in _chain(exc)}
    network = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "OfflineModeIsEnabled",
               "LocalEntryNotFoundError", "MaxRetryError", "NameResolutionError", "HfHubHTTPError",
               "ConnectionRefusedError", "gaierror"}
    return bool(names & network) or any(w in text for w in ("offline", "connection", "resolve host",
                                                             "temporary failure", "network"))


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


# --------------------------------------------------------------------------
# MLQARetrieval as a local mteb task (offline): the same 49 subsets through mteb's own evaluation

SCRIPTS = {"ar": "ara-Arab", "de": "deu-Latn", "en": "eng-Latn", "es": "spa-Latn", "hi": "hin-Deva",
           "vi": "vie-Latn", "zh": "zho-Hans"}
LOCAL_TASK = "MLQARetrievalLocal"


def local_mlqa_task(subsets: dict | None = None, *, max_items: int = 0):
    """An mteb ``AbsTaskRetrieval`` holding the 49 MLQARetrieval subsets of ``subsets`` (split validation).

    Built from ``lib.mlqa_retrieval.mteb_view`` of each subset (distinct questions and
    paragraphs, as mteb builds the hub task), with the document ids that
    :func:`evaluate_mlqa_retrieval` uses, so ``mteb.evaluate`` scores exactly
    the local task without a network. ``subsets`` defaults to
    ``lib.data.load_mlqa_retrieval(max_items)``.
    """
    _import_mteb(local=True)
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    if subsets is None:
        subsets = load_mlqa_retrieval(max_items=max_items)
    check_subsets(subsets, complete=not max_items)
    data = {}
    for (q_lang, d_lang), (q_texts, _, d_texts, relevant) in views(subsets).items():
        d_ids = doc_ids(d_lang, len(d_texts))
        q_ids = [f"{q_lang}-q{i:06d}" for i in range(len(q_texts))]
        data[mteb_subset_name(q_lang, d_lang)] = {SPLIT: {
            "queries": Dataset.from_dict({"id": q_ids, "text": list(q_texts)}),
            "corpus": Dataset.from_dict({"id": d_ids, "text": list(d_texts), "title": [""] * len(d_texts)}),
            "relevant_docs": {q: {d_ids[j]: 1 for j in rel} for q, rel in zip(q_ids, relevant)},
            "top_ranked": None}}
    eval_langs = {name: [SCRIPTS[parse_subset_name(name)[1]], SCRIPTS[parse_subset_name(name)[0]]]
                  for name in data}
    n_queries = sum(len(v[SPLIT]["queries"]) for v in data.values())

    class MLQARetrievalLocal(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=LOCAL_TASK, type="Retrieval", category="t2t", modalities=["text"],
            description="MTEB's MLQARetrieval (validation = MLQA v1 dev, 49 subsets) built offline from the "
                        f"project's data mirror by lib.mteb_eval.local_mlqa_task ({n_queries} queries"
                        f"{', max_items=' + str(max_items) if max_items else ''}).",
            reference="https://github.com/facebookresearch/MLQA",
            dataset={"path": "local/mlqa-retrieval", "revision": f"max_items-{max_items}"},
            eval_splits=[SPLIT], eval_langs=eval_langs, main_score=MAIN_METRIC,
            date=("2019-01-01", "2020-12-31"), domains=["Encyclopaedic", "Written"],
            task_subtypes=["Question answering"], license="cc-by-sa-3.0", annotations_creators="human-annotated",
            dialect=[], sample_creation="found", bibtex_citation="")

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = data
            self.data_loaded = True

    return MLQARetrievalLocal()

def mteb_agreement(encoder, subsets: dict | None = None, *, max_items: int = 0, batch_size: int = 32,
                   max_length: int = 512, out_dir: str | os.PathLike | None = None,
                   progress: bool | None = False, fp32: bool = True,
                   reuse_embeddings: bool = False, tie_tol: float = TIE_TOL) -> pd.DataFrame:
    """nDCG@10 per subset from :func:`evaluate_mlqa_retrieval` and from ``mteb.evaluate`` on :func:`local_mlqa_task`.

    Offline. Rows ``query_lang, doc_lang, subset, n_queries, local, mteb,
    abs_diff, raw_diff``: mteb reports its retrieval metrics rounded to 5
    decimals, so ``abs_diff`` = |round(local, 5) - mteb| (0 up to float
    representation when both compute the same ranking) and ``raw_diff`` =
    |local - mteb| (at most 5e-6 from the rounding alone).
    ``frame.attrs`` holds ``max_abs_diff``, ``max_raw_diff``, the mteb
    version and the model's mteb name / revision. mteb's result files go to
    ``out_dir`` (default ``CACHE_DIR/mteb``).

    ``fp32`` (default) encodes without bf16 autocast for the duration of the
    check: under bf16 an embedding depends slightly on the other texts of
    its batch (padding changes the kernels' shapes), and mteb batches each
    subset's corpus while the local evaluation batches each language once,
    so a near-tie can flip (seen: one subset of 49 off by 0.0012 nDCG@10,
    1 layer, 25 items). In fp32 both sides get the same embeddings and the
    check isolates what it is about: the task construction and the metric.

    ``reuse_embeddings`` hands mteb the vectors the local evaluation computed
    (looked up by role and text; ``attrs["mteb_new_texts"]`` counts texts mteb
    asked for that the local side never encoded, 0 when both read the same
    texts): the encoder then runs once instead of twice (mteb re-encodes
    each subset's corpus), for full-size checks on a small CPU. The task
    construction, the roles and prefixes mteb asks for, the ranking and the
    metric are still compared; the encoder's batch-independence is not.

    Near-ties: two correct implementations may order candidates whose scores
    are ``tie_tol`` apart or less differently (summation order moves a cosine
    by about 1e-7 in float32). For every subset that differs at 5 decimals
    (``abs_diff`` > :data:`EXACT`), ``tie_low`` / ``tie_high`` are the lowest
    and highest local nDCG@10 over the orderings of such near-ties
    (:func:`lib.mlqa_retrieval.tie_metric_range`, the same vectors), and
    ``within_ties`` says whether mteb's value lies in that range (widened by
    mteb's rounding). ``attrs``: ``n_exact`` (subsets equal at 5 decimals),
    ``n_within_ties``, and ``agree``: every subset is one or the other.
    """
    if subsets is None:
        subsets = load_mlqa_retrieval(max_items=max_items)
    wrapper = encoder if isinstance(encoder, MtebEncoder) else MtebEncoder(encoder, batch_size=batch_size,
                                                                           max_length=max_length)
    task = local_mlqa_task(subsets, max_items=max_items)
    memo = EmbeddingMemo(wrapper.encoder) if reuse_embeddings else None
    with _env("HBT_BF16", "0" if fp32 else None):
        ours = evaluate_mlqa_retrieval(memo or wrapper.encoder, subsets, max_items=max_items,
                                       batch_size=batch_size, max_length=max_length, progress=progress)
        if memo is not None:
            memo.misses = 0
            meta, wrapper = wrapper.mteb_model_meta, MtebEncoder(memo, wrapper.name, wrapper.batch_size,
                                                                 wrapper.max_length, wrapper.revision)
            wrapper.mteb_model_meta = meta
        theirs = run_mteb(wrapper, [task], out_dir, eval_splits=[SPLIT], batch_size=batch_size,
                          max_length=max_length, show_progress=bool(progress))
        table = join_scores(ours.subsets, theirs, ["query_lang", "doc_lang", "subset", "n_queries"],
                            "mteb_agreement")
        table["abs_diff"] = (table["local"].round(5) - table["mteb"]).abs()
        table["raw_diff"] = (table["local"] - table["mteb"]).abs()
        table["tie_low"], table["tie_high"] = table["local"], table["local"]
        vectors = memo or wrapper.encoder  # the memo serves the local side's vectors again
        for idx in table.index[table["abs_diff"] > EXACT]:
            key = (table.at[idx, "query_lang"], table.at[idx, "doc_lang"])
            table.loc[idx, ["tie_low", "tie_high"]] = subset_tie_range(vectors, subsets[key], tie_tol,
                                                                       batch_size=batch_size, max_length=max_length)
    rounding = 5e-6  # mteb's 5 decimals
    table["within_ties"] = ((table["mteb"] >= table["tie_low"] - rounding)
                            & (table["mteb"] <= table["tie_high"] + rounding))
    n_exact = int((table["abs_diff"] <= EXACT).sum())
    n_ties = int(((table["abs_diff"] > EXACT) & table["within_ties"]).sum())
    meta = wrapper.mteb_model_meta
    table.attrs.update(max_abs_diff=float(table["abs_diff"].max()), max_raw_diff=float(table["raw_diff"].max()),
                       mteb_version=_mteb_version(), model_name=getattr(meta, "name", wrapper.name),
                       revision=getattr(meta, "revision", wrapper.revision), max_items=max_items, fp32=fp32,
                       n_queries=int(table["n_queries"].sum()), reuse_embeddings=reuse_embeddings,
                       mteb_new_texts=memo.misses if memo is not None else None,
                       n_exact=n_exact, n_within_ties=n_ties, agree=n_exact + n_ties == len(table),
                       tie_tol=tie_tol)
    return table


def subset_tie_range(encoder, rset, tol: float = TIE_TOL, *, batch_size: int = 32,
                     max_length: int = 512) -> tuple[float, float]:
    """Lowest and highest local nDCG@10 of one MLQARetrieval subset over the orderings of its near-tied
    candidates (scores at most ``tol`` apart), with ``encoder``'s vectors."""
    q_texts, _, d_texts, relevant = mteb_view(rset)
    q = encoder.encode(q_texts, "query", batch_size=batch_size, max_length=max_length, progress=False)
    d = encoder.encode(d_texts, "passage", batch_size=batch_size, max_length=max_length, progress=False)
    scores = np.asarray(q, dtype=np.float32) @ np.asarray(d, dtype=np.float32).T
    return tie_metric_range(scores, relevant, tol)


def join_scores(subsets: pd.DataFrame, theirs: pd.DataFrame, columns: Sequence[str], caller: str) -> pd.DataFrame:
    """``columns`` of the local subset table with ``local`` (our nDCG@10) and ``mteb`` (mteb's, matched by subset
    name, split validation); StudyError naming ``caller`` when mteb returned no score for a subset."""
    theirs = theirs[(theirs["split"] == SPLIT) & (theirs["metric"] == MAIN_METRIC)]
    by_subset = dict(zip(theirs["hf_subset"], theirs["value"]))
    table = subsets[[*columns, MAIN_METRIC]].rename(columns={MAIN_METRIC: "local"})
    table["mteb"] = table["subset"].map(by_subset)
    if table["mteb"].isna().any():
        missing = table.loc[table["mteb"].isna(), "subset"].tolist()
        raise StudyError(f"{caller}: mteb returned no {MAIN_METRIC} for subsets {missing[:5]}; "
                         f"it returned {sorted(by_subset)[:5]}...")
    return table


def _score_rows(task_results: Iterable[Any]) -> pd.DataFrame:
    """mteb TaskResult objects -> rows task, split, hf_subset, metric, value."""
    rows = []
    for tr in task_results:
        scores = getattr(tr, "scores", None) or {}
        name = getattr(tr, "task_name", "?")
        for split, entries in scores.items():
            for entry in entries:
                for metric, value in entry.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        rows.append({"task": name, "split": split, "hf_subset": entry.get("hf_subset", ""),
                                     "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["task", "split", "hf_subset", "metric", "value"])


def run_mteb(encoder, tasks: Sequence[Any] = MTEB_TASKS, out_dir: str | os.PathLike | None = None, *,
             name: str = "", eval_splits: Sequence[str] | None = None, batch_size: int = 32,
             max_length: int = 512, show_progress: bool = True) -> pd.DataFrame:
    """Run ``encoder`` through the ``mteb`` package on ``tasks``; rows task, split, hf_subset, metric, value.

    ``tasks`` are mteb task names (their data comes from the Hugging Face
    hub, so they need a network) or task objects such as
    :func:`local_mlqa_task` (offline). Raises StudyError when mteb is
    missing, and DataError naming the network when hub data cannot be
    reached (``HF_HUB_OFFLINE`` set, or a connection failure). mteb's own
    result files go to ``out_dir`` (default ``CACHE_DIR/mteb``), under
    ``results/hybrid-batch-study__<name>/<revision>/``; the rows are also
    written to ``out_dir/mteb_scores.csv``.
    """
    mteb = _import_mteb(local=all(not isinstance(t, str) for t in tasks))
    names = [t for t in tasks if isinstance(t, str)]
    flags = offline_flags()
    if flags and names:
        raise DataError(f"run_mteb: {', '.join(flags)} is set, so the Hugging Face hub (where mteb reads the "
                        f"data of {names}) is not reachable; this is a network setting, not a wrong task "
                        "name. Unset it on a machine with a network, or use evaluate_mlqa_retrieval offline")
    wrapper = encoder if isinstance(encoder, MtebEncoder) else MtebEncoder(encoder, name, batch_size, max_length)
    if wrapper.mteb_model_meta is None:
        wrapper.mteb_model_meta = model_meta(wrapper)
    out_dir = Path(out_dir) if out_dir is not None else CACHE_DIR / "mteb"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        kwargs = {"eval_splits": list(eval_splits)} if eval_splits else {}
        task_objs = list(mteb.get_tasks(tasks=names, **kwargs)) if names else []
        local = [t for t in tasks if not isinstance(t, str)]
        if eval_splits:
            local = [t.filter_eval_splits(list(eval_splits)) if hasattr(t, "filter_eval_splits") else t
                     for t in local]
        task_objs += local
        if hasattr(mteb, "evaluate"):  # mteb 2.x
            cache = mteb.ResultCache(cache_path=str(out_dir)) if hasattr(mteb, "ResultCache") else None
            with _datasets_progress(show_progress):
                result = mteb.evaluate(wrapper, task_objs, cache=cache, show_progress_bar=show_progress,
                                       encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress},
                                       overwrite_strategy="always")
            task_results = getattr(result, "task_results", result)
        else:  # mteb 1.x
            task_results = mteb.MTEB(tasks=task_objs).run(wrapper, output_folder=str(out_dir),
                                                          encode_kwargs={"batch_size": batch_size},
                                                          overwrite_results=True)
    except StudyError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the cause named
        if names and _looks_like_network_error(exc):
            raise DataError(f"run_mteb: the task data of {names} could not be downloaded from the Hugging "
                            f"Face hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                            "the network or the hub is unreachable. Retry with a network, or use "
                            "evaluate_mlqa_retrieval offline") from exc
        raise
    rows = _score_rows(task_results)
    with atomic_write(out_dir / "mteb_scores.csv") as tmp:
        rows.to_csv(tmp, index=False)
    return rows


def compare_with_mteb(encoder, subsets: dict | None = None, out_dir: str | os.PathLike | None = None, *,
                      name: str = "", batch_size: int = 32, max_length: int = 512, max_items: int = 0,
                      tolerance: dict[str, float] | None = None) -> pd.DataFrame:
    """Local MLQARetrieval against mteb's on the same encoder: nDCG@10 per subset, split validation.

    Returns rows ``query_lang, doc_lang, subset, local, mteb, abs_diff`` with
    ``frame.attrs["agree"]`` true when the largest and the mean absolute
    difference stay within ``tolerance`` (default :data:`COMPARE_TOLERANCE`);
    raises StudyError when they do not. Needs mteb and a network (paper
    profile).
    """
    tolerance = {**COMPARE_TOLERANCE, **(tolerance or {})}
    ours = evaluate_mlqa_retrieval(encoder, subsets, max_items=max_items, batch_size=batch_size,
                                   max_length=max_length)
    theirs = run_mteb(encoder, ["MLQARetrieval"], out_dir, name=name, eval_splits=[SPLIT],
                      batch_size=batch_size, max_length=max_length)
    table = join_scores(ours.subsets, theirs, ["query_lang", "doc_lang", "subset"], "compare_with_mteb")
    table["abs_diff"] = (table["local"] - table["mteb"]).abs()
    agree = (table["abs_diff"].max() <= tolerance["max_abs_diff"]
             and table["abs_diff"].mean() <= tolerance["mean_abs_diff"])
    table.attrs.update(agree=bool(agree), tolerance=tolerance)
    if not agree:
        raise StudyError(f"local MLQARetrieval and mteb disagree: max |diff| {table['abs_diff'].max():.4f}, mean "
                         f"{table['abs_diff'].mean():.4f} (tolerance {tolerance}); worst subsets "
                         f"{table.nlargest(3, 'abs_diff')[['subset', 'local', 'mteb']].to_dict('records')}")
    return table
