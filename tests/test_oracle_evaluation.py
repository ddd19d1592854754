"""``evaluate_model`` against brute force on its own cached embeddings (tiny random encoder).

The test reloads the query and passage embeddings that ``evaluate_model``
cached, checks that they are the queries encoded with the query prefix and
the passages with the passage prefix (each text embedded alone, the prefix
written out here), in an order rebuilt here (candidates sorted by language,
stable), then recomputes every question's relevant ranks with numpy (full
pool for ``multi``, one candidate language for ``mono`` / ``cross``) and
compares AP and MRR@10 with the per-query file and ``metrics.csv``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import redirect_results
from lib import evaluation as E
from lib import retrieval as R
from test_evaluation import tiny_set


@pytest.fixture
def results(tmp_path, monkeypatch):
    redirect_results(monkeypatch, tmp_path)
    monkeypatch.setenv("HBT_BF16", "0")  # fp32 encoding, so an fp32 oracle matches to 1e-5
    return tmp_path


def shuffled_set():
    """tiny_set with its candidates interleaved across languages (the pool must be re-sorted)."""
    data = tiny_set(n_items=6, missing=(("c", 5), ("a", 2)), distractors=2)
    order = np.random.default_rng(0).permutation(len(data.docs))
    data.docs = data.docs.iloc[order].reset_index(drop=True)
    assert not data.docs["lang"].is_monotonic_increasing
    return data


@torch.no_grad()
def embed_alone(enc, texts: list[str], prefix: str) -> np.ndarray:
    enc.model.eval()
    out = []
    for t in texts:
        batch = enc.tokenizer([prefix + t], return_tensors="pt", return_token_type_ids=False)
        out.append(enc.embed(dict(batch))[0].numpy())
    return np.stack(out)


def pessimistic_ranks(scores: np.ndarray, members: np.ndarray, relevant: np.ndarray) -> list[int]:
    """Sorted 1-based ranks of ``relevant`` among ``members`` (ties against the relevant ones)."""
    s = scores[members]
    is_rel = np.isin(members, relevant)
    ranks = []
    for c in relevant:
        ranks.append(1 + int(np.sum(s > scores[c])) + int(np.sum((s == scores[c]) & ~is_rel)))
    ranks = sorted(ranks)
    # relevant candidates tied with each other take consecutive ranks
    return [r + sum(1 for x in ranks[:i] if x == r) for i, r in enumerate(ranks)]


def ap(ranks) -> float:
    return float(np.mean([(i + 1) / r for i, r in enumerate(sorted(ranks))]))


def mrr10(ranks) -> float:
    return 1.0 / min(ranks) if min(ranks) <= 10 else 0.0


def test_evaluate_model_equals_brute_force_on_its_cached_embeddings(results, tiny_encoder):
    data = shuffled_set()
    E.evaluate_model(tiny_encoder, "tiny", "mlqa_r", "unit", data=data)
    folder = R.embedding_dir("unit", "tiny", "mlqa_r")
    q_emb, d_emb = np.load(folder / "query.npy"), np.load(folder / "passage.npy")

    # order rebuilt independently: questions as given, candidates sorted by language (stable)
    queries = data.queries
    docs = data.docs.sort_values("lang", kind="stable").reset_index(drop=True)
    assert q_emb.shape == (len(queries), tiny_encoder.dim) and d_emb.shape == (len(docs), tiny_encoder.dim)

    # roles: queries with "query: ", passages with "passage: "
    np.testing.assert_allclose(q_emb, embed_alone(tiny_encoder, queries["text"].tolist(), "query: "), atol=1e-5)
    np.testing.assert_allclose(d_emb, embed_alone(tiny_encoder, docs["text"].tolist(), "passage: "), atol=1e-5)
    swapped = embed_alone(tiny_encoder, queries["text"].tolist(), "passage: ")
    assert np.abs(swapped - q_emb).max() > 1e-2  # guard: the prefix changes the embedding

    # brute force: relevant = the answer candidates of every language version of the item
    doc_pos = {d: i for i, d in enumerate(docs["doc_id"])}
    item_of = dict(zip(queries["qid"], queries["item_id"]))
    rel_by_item: dict[str, set] = {}
    for qid, doc_id in zip(data.qrels["qid"], data.qrels["doc_id"]):
        rel_by_item.setdefault(item_of[qid], set()).add(doc_pos[doc_id])
    scores = q_emb.astype(np.float64) @ d_emb.astype(np.float64).T
    doc_lang = docs["lang"].to_numpy()
    want = {}
    for i, (qid, item, lang) in enumerate(zip(queries["qid"], queries["item_id"], queries["lang"])):
        rel = np.array(sorted(rel_by_item[item]))
        ranks = pessimistic_ranks(scores[i], np.arange(len(docs)), rel)
        want[(qid, "multi", "all")] = ranks
        for y in sorted(set(doc_lang[rel])):
            members = np.flatnonzero(doc_lang == y)
            want[(qid, "mono" if y == lang else "cross", y)] = pessimistic_ranks(
                scores[i], members, rel[doc_lang[rel] == y])

    per_query = E.load_per_query("unit", "tiny", "mlqa_r")
    got = per_query.set_index(["query_id", "setting", "doc_lang"])
    assert set(got.index) == set(want)
    for key, ranks in want.items():
        row = got.loc[key]
        assert list(row["relevant_ranks"]) == ranks, key
        assert row["ap"] == pytest.approx(ap(ranks), abs=1e-12), key
        assert row["mrr_at_10"] == pytest.approx(mrr10(ranks), abs=1e-12), key
    assert sum(r != list(range(1, len(r) + 1)) for r in want.values()) > 10  # not trivially perfect

    # metrics.csv: the mean AP of each cell over its questions
    lang_of = dict(zip(queries["qid"], queries["lang"]))
    frame = pd.DataFrame([dict(setting=s, query_lang=lang_of[q], doc_lang=y, ap=ap(r)) for (q, s, y), r in want.items()])
    cells = frame.groupby(["setting", "query_lang", "doc_lang"])["ap"].agg(["mean", "size"])
    metrics = E.load_metrics("unit")
    maps = metrics[metrics["metric"] == "map"].set_index(["setting", "query_lang", "doc_lang"])
    np.testing.assert_allclose(maps.loc[cells.index, "value"], cells["mean"], atol=1e-9)
    np.testing.assert_array_equal(maps.loc[cells.index, "n_queries"], cells["size"])
