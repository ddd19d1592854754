"""MTEB-style MLQARetrieval: subset construction, trec_eval ranking, nDCG@10, the mteb wrapper."""
from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lib import results as results_store
from lib import mlqa_retrieval as MR
from lib import mteb_adapter as MA
from lib import mteb_eval as ME
from lib.errors import ConfigError, DataError, StudyError

# tiny fake languages: the tiny tokenizer's words <letter><digit>, one letter per MLQA language
LETTER = {"ar": "a", "de": "d", "en": "e", "es": "s", "hi": "h", "vi": "v", "zh": "z"}


def rset(queries, docs, qrels):
    """A RetrievalSet-shaped object: queries (qid, item_id, lang, text), docs (doc_id, lang, text), qrels."""
    return SimpleNamespace(queries=pd.DataFrame(queries, columns=["qid", "item_id", "lang", "text"]),
                           docs=pd.DataFrame(docs, columns=["doc_id", "lang", "text"]),
                           qrels=pd.DataFrame(qrels, columns=["qid", "doc_id"]))


def synthetic_subsets(n_items: int = 3) -> dict:
    """49 subsets; item i is the question '<q>i <q>{i+1}' against the paragraph '<c>i <c>{i+1} <c>9'."""
    out = {}
    for q in MR.LANGS:
        for c in MR.LANGS:
            lq, lc = LETTER[q], LETTER[c]
            queries = [(f"{q}-{i}", str(i), q, f"{lq}{i} {lq}{i + 1}") for i in range(n_items)]
            docs = [(f"{c}-p{i}", c, f"{lc}{i} {lc}{i + 1} {lc}9") for i in range(n_items)]
            out[(q, c)] = rset(queries, docs, [(f"{q}-{i}", f"{c}-p{i}") for i in range(n_items)])
    return out


def ndcg10_reference(ranked_doc_ids, relevant) -> float:
    """Second implementation: DCG of the binary gains in the top 10 over the ideal DCG."""
    dcg = sum(1.0 / math.log2(pos + 2) for pos, d in enumerate(ranked_doc_ids[:10]) if d in relevant)
    ideal = sum(1.0 / math.log2(pos + 2) for pos in range(min(10, len(relevant))))
    return dcg / ideal


# ---------------------------------------------------------------- subsets


def test_subset_names_put_the_corpus_language_first():
    assert MR.mteb_subset_name("ar", "en") == "eng-ara"  # Arabic questions, English paragraphs
    assert MR.parse_subset_name("eng-ara") == ("ar", "en")
    names = {MR.mteb_subset_name(q, c) for q, c in MR.MLQA_VALIDATION_COUNTS}
    assert len(names) == 49 and len(MR.MLQA_VALIDATION_COUNTS) == 49
    # mteb's statistics: English-English 1148 questions over 978 paragraphs; Arabic questions vs German 207 / 170
    assert MR.MLQA_VALIDATION_COUNTS[("en", "en")] == (1148, 978)
    assert MR.MLQA_VALIDATION_COUNTS[("de", "ar")] == (207, 170)
    with pytest.raises(ConfigError):
        MR.mteb_subset_name("fr", "en")
    with pytest.raises(ConfigError):
        MR.parse_subset_name("eng_ara")


def test_mteb_view_merges_duplicate_texts_like_mteb():
    rs = rset(queries=[("q1", "i1", "en", "who?"), ("q2", "i2", "en", "who?"), ("q3", "i3", "en", "why?"),
                       ("q4", "i4", "en", "unjudged")],
              docs=[("d1", "de", "P one"), ("d2", "de", "P two"), ("d3", "de", "P one")],
              qrels=[("q1", "d1"), ("q2", "d2"), ("q3", "d3")])
    q_texts, items, d_texts, relevant = MR.mteb_view(rs)
    assert q_texts == ["who?", "why?"]  # same text -> one query; a query without qrels is dropped
    assert d_texts == ["P one", "P two"]  # same paragraph -> one document
    assert relevant == [[0, 1], [0]]  # the merged query keeps both paragraphs
    assert items == ["i1", "i3"]


def test_mteb_view_rejects_qrels_naming_unknown_ids():
    rs = rset([("q1", "i1", "en", "who?")], [("d1", "de", "P")], [("q1", "d9")])
    with pytest.raises(DataError, match="unknown"):
        MR.mteb_view(rs)


def test_check_subsets_needs_49_pairs_and_mtebs_counts():
    subsets = synthetic_subsets(2)
    MR.check_subsets(subsets, complete=False)
    with pytest.raises(DataError, match="counts"):
        MR.check_subsets(subsets, complete=True)  # 2 questions per subset are not mteb's numbers
    del subsets[("en", "zh")]
    with pytest.raises(DataError, match="49"):
        MR.check_subsets(subsets, complete=False)


# ---------------------------------------------------------------- ranking and nDCG@10


def test_trec_ranks_break_ties_by_doc_id_descending():
    scores = np.array([[0.5, 0.9, 0.5, 0.1]], dtype=np.float32)
    ids = ["d1", "d2", "d3", "d4"]
    # ranking: d2 (0.9), then the tie d3 > d1 by id descending, then d4
    ranks, tied = MR.trec_ranks(scores, [[0, 2, 3]], ids)
    assert ranks[0].tolist() == [3, 2, 4] and tied.tolist() == [True]
    ranks, tied = MR.trec_ranks(scores, [[1]], ids)
    assert ranks[0].tolist() == [1] and tied.tolist() == [False]


def test_tie_rank_bounds_let_near_tied_candidates_come_in_either_order():
    # sorted: 0.9 | 0.5000004, 0.5, 0.4999997 (a chain of gaps <= 1e-6) | 0.1
    scores = np.array([[0.5, 0.9, 0.5000004, 0.1, 0.4999997]], dtype=np.float64)
    best, worst = MR.tie_rank_bounds(scores, [[0]], tol=1e-6)
    assert best[0].tolist() == [2] and worst[0].tolist() == [4]  # anywhere in the group of three
    best, worst = MR.tie_rank_bounds(scores, [[0, 4]], tol=1e-6)  # two relevant documents in one group
    assert sorted(best[0].tolist()) == [2, 3] and sorted(worst[0].tolist()) == [3, 4]
    best, worst = MR.tie_rank_bounds(scores, [[1, 3]], tol=1e-6)  # alone in their groups: one rank each
    assert best[0].tolist() == worst[0].tolist() == [1, 5]
    best, worst = MR.tie_rank_bounds(scores, [[0]], tol=0.0)  # no tolerance: nothing is tied
    assert best[0].tolist() == worst[0].tolist() == [3]
    with pytest.raises(ConfigError, match="tol=-1"):
        MR.tie_rank_bounds(scores, [[0]], tol=-1)


def test_tie_metric_range_spans_the_orderings_of_a_near_tie_at_rank_10():
    # the relevant document (index 0) ties within 1e-7 with the candidate at rank 10: rank 10 or 11
    scores = np.concatenate([[0.5], 0.5 + np.arange(9, 0, -1) * 0.01, [0.5 + 1e-7], [0.1]])[None, :]
    low, high = MR.tie_metric_range(scores, [[0]], tol=1e-6)
    assert low == 0.0 and high == pytest.approx(1 / math.log2(11))
    assert MR.tie_metric_range(scores, [[0]], tol=1e-8) == (0.0, 0.0)  # ranked 11th: outside the top 10


def test_ndcg_at_10_on_a_handmade_ranking_matches_a_second_implementation():
    rng = np.random.default_rng(0)
    n_docs, ids = 14, [f"c{j:02d}" for j in range(14)]
    scores = np.stack([rng.permutation(n_docs) for _ in range(4)]).astype(np.float32)  # distinct scores
    relevant = [[int(np.argmax(scores[0]))],  # rank 1 -> nDCG 1
                [int(np.argsort(-scores[1])[2])],  # rank 3 -> 1 / log2(4) = 0.5
                [int(np.argsort(-scores[2])[11])],  # rank 12 -> 0
                [int(np.argsort(-scores[3])[0]), int(np.argsort(-scores[3])[4])]]  # ranks 1 and 5
    ranks, _ = MR.trec_ranks(scores, relevant, ids)
    assert [sorted(r.tolist()) for r in ranks] == [[1], [3], [12], [1, 5]]
    values = MR.subset_metrics(ranks)
    known = [1.0, 0.5, 0.0, (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))]
    np.testing.assert_allclose(values["ndcg_at_10"], known, atol=1e-9)
    for i in range(4):
        ranked = [ids[j] for j in np.argsort(-scores[i], kind="stable")]
        assert values["ndcg_at_10"][i] == pytest.approx(ndcg10_reference(ranked, {ids[j] for j in relevant[i]}))
    np.testing.assert_allclose(values["mrr_at_10"], [1.0, 1 / 3, 0.0, 1.0])
    np.testing.assert_allclose(values["recall_at_10"], [1.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(values["ap"], [1.0, 1 / 3, 1 / 12, (1 + 2 / 5) / 2])


# ---------------------------------------------------------------- end to end on a tiny encoder


class CountingEncoder:
    """Wraps an Encoder and records every encode call."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, []

    def encode(self, texts, role, **kwargs):
        self.calls.append((role, len(texts)))
        return self.encoder.encode(texts, role, **kwargs)


def test_evaluate_encodes_each_language_once_and_writes_all_rows(tiny_encoder):
    enc = CountingEncoder(tiny_encoder)
    result = MR.evaluate_mlqa_retrieval(enc, synthetic_subsets(3), max_items=3, max_length=32)
    assert len(enc.calls) == 14  # 7 languages x (questions, paragraphs), shared by the 49 subsets
    assert sorted(enc.calls) == sorted([("query", 3)] * 7 + [("passage", 3)] * 7)
    table = result.subsets
    assert len(table) == 49 and set(table["subset"]) == {MR.mteb_subset_name(q, c) for q, c in MR.MLQA_VALIDATION_COUNTS}
    assert table[list(MR.METRICS)].apply(lambda s: s.between(0, 1)).all().all()
    assert len(result.per_query) == 49 * 3 and result.per_query["item_id"].isin(["0", "1", "2"]).all()
    # subset means are the means of the per-query values
    pq = result.per_query.groupby(["query_lang", "doc_lang"])["ndcg_at_10"].mean()
    np.testing.assert_allclose(table.set_index(["query_lang", "doc_lang"])["ndcg_at_10"].loc[pq.index], pq)
    summary = result.summary().set_index(["setting", "metric"])["value"]
    same = table["query_lang"] == table["doc_lang"]
    assert summary["same", "ndcg_at_10"] == pytest.approx(table.loc[same, "ndcg_at_10"].mean())
    assert summary["cross", "ndcg_at_10"] == pytest.approx(table.loc[~same, "ndcg_at_10"].mean())
    assert summary["all", "ndcg_at_10"] == pytest.approx(table["ndcg_at_10"].mean())
    rows = MR.metric_rows(result, model="zero-shot", strategy="zero-shot", layers=2)
    assert len(rows) == 49 * 3 + 3 * 3
    subset_rows = rows[(rows["setting"] == "subset") & (rows["metric"] == "ndcg_at_10")]
    assert len(subset_rows) == 49 and (rows["dataset"] == "mlqa_retrieval").all() and (rows["layers"] == 2).all()
    assert set(rows.loc[rows["setting"] != "subset", "doc_lang"]) == {""}


def test_write_results_upserts_metrics_csv(tiny_encoder, tmp_path, monkeypatch):
    import lib.evaluation as EV

    monkeypatch.setattr(EV, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(results_store, "results_dir", lambda profile: tmp_path / profile)  # the evaluation manifest
    result = MR.evaluate_mlqa_retrieval(tiny_encoder, synthetic_subsets(2), max_items=2, max_length=32)
    assert not MR.has_results("t", "zero-shot_L2")
    MR.write_mlqa_results(result, "t", model="zero-shot_L2", strategy="zero-shot", layers=2)
    MR.write_mlqa_results(result, "t", model="zero-shot_L2", strategy="zero-shot", layers=2)  # replaces, no dup
    metrics = EV.load_metrics("t")
    sub = metrics[(metrics["dataset"] == "mlqa_retrieval") & (metrics["setting"] == "subset")
                  & (metrics["metric"] == "ndcg_at_10")]
    assert len(sub) == 49 and sub["query_lang"].ne("").all()
    assert MR.has_results("t", "zero-shot_L2")
    MR.record_evaluation("t", "zero-shot_L2", {"model_fingerprint": "abc", "max_items": 2})
    assert MR.has_results("t", "zero-shot_L2", {"model_fingerprint": "abc", "max_items": 2})
    assert not MR.has_results("t", "zero-shot_L2", {"model_fingerprint": "changed", "max_items": 2})
    assert len(pd.read_parquet(EV.per_query_path("t", "zero-shot_L2", "mlqa_retrieval"))) == 49 * 2


# ---------------------------------------------------------------- the mteb wrapper


def test_mteb_wrapper_encodes_dataloader_batches_with_the_right_role(tiny_encoder):
    wrapper = MA.MtebEncoder(tiny_encoder, name="tiny", batch_size=4, max_length=32)
    texts = ["a1 a2", "b1 b2 b3", "c1", "d1 d2", "e1 e2 e3"]
    loader = [{"text": texts[:2]}, {"text": texts[2:4], "title": ["", ""]}, {"text": texts[4:]}]  # DataLoader-like
    document = SimpleNamespace(value="document")  # mteb 2's PromptType.document
    docs = wrapper.encode(loader, task_metadata=None, hf_split="validation", hf_subset="eng-ara",
                          prompt_type=document)
    queries = wrapper.encode(loader, task_metadata=None, hf_split="validation", hf_subset="eng-ara",
                             prompt_type="query")
    assert docs.shape == queries.shape == (5, tiny_encoder.dim)
    np.testing.assert_allclose(docs, tiny_encoder.encode(texts, "passage", max_length=32), atol=1e-6)
    np.testing.assert_allclose(queries, tiny_encoder.encode(texts, "query", max_length=32), atol=1e-6)
    assert not np.allclose(docs, queries)  # "passage: " vs "query: " prefixes
    assert wrapper.calls == [("passage", 5), ("query", 5)]
    legacy = wrapper.encode(texts, task_name="MLQARetrieval", prompt_type="passage")  # mteb 1.x call
    np.testing.assert_allclose(legacy, docs, atol=1e-6)
    sim = wrapper.similarity(queries, docs)
    assert tuple(sim.shape) == (5, 5)
    np.testing.assert_allclose(sim.numpy(), queries @ docs.T, atol=1e-5)
    with pytest.raises(ConfigError):
        wrapper.encode(loader, prompt_type="image")


@pytest.mark.skipif(importlib.util.find_spec("mteb") is not None, reason="mteb is installed here")
def test_run_mteb_without_the_package_says_what_to_install(tiny_encoder, tmp_path):
    with pytest.raises(StudyError, match="pip install"):
        ME.run_mteb(tiny_encoder, out_dir=tmp_path)


@pytest.mark.real_data
def test_the_data_layers_subsets_are_mtebs():
    from lib.data import load_mlqa_retrieval

    subsets = load_mlqa_retrieval()
    MR.check_subsets(subsets, complete=True)  # 49 subsets with mteb's query / document counts
    assert sum(len(MR.mteb_view(rs)[0]) for rs in subsets.values()) == 15747  # mteb's validation n_samples
