"""Full-pool ranks and metrics against independent implementations (sklearn, ranx, brute force)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from lib import metrics as M
from lib.errors import ConfigError
from lib.retrieval import block_ranks, relevant_ranks, topk_search


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _random_case(seed, n_q=20, n_pool=300, max_rel=6):
    rng = np.random.default_rng(seed)
    q, pool = _unit(rng, n_q), _unit(rng, n_pool)
    rel = [rng.choice(n_pool, rng.integers(1, max_rel + 1), replace=False) for _ in range(n_q)]
    return q, pool, rel


def test_ranks_match_brute_force_sorting():
    q, pool, rel = _random_case(0)
    ranks = relevant_ranks(q, pool, rel)
    for i in range(len(q)):
        order = np.argsort(-(pool @ q[i]), kind="stable")
        position = np.empty(len(pool), dtype=int)
        position[order] = np.arange(1, len(pool) + 1)
        assert ranks[i].tolist() == position[rel[i]].tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_pool_ap_equals_sklearn(seed):
    q, pool, rel = _random_case(seed)
    aps = M.average_precisions(relevant_ranks(q, pool, rel))
    for i in range(len(q)):
        y = np.zeros(len(pool), dtype=int)
        y[rel[i]] = 1
        assert aps[i] == pytest.approx(average_precision_score(y, pool @ q[i]), abs=1e-9)


def test_full_pool_ap_equals_ranx_map_over_whole_pool():
    from ranx import Qrels, Run, evaluate

    q, pool, rel = _random_case(4, n_q=8, n_pool=120)
    aps = M.average_precisions(relevant_ranks(q, pool, rel))
    qrels = Qrels({f"q{i:03d}": {f"d{j}": 1 for j in r} for i, r in enumerate(rel)})
    run = Run({f"q{i:03d}": {f"d{j}": float(s) for j, s in enumerate(pool @ q[i])} for i in range(len(q))})
    ranx_map = evaluate(qrels, run, f"map@{len(pool)}", return_mean=False, threads=1)
    np.testing.assert_allclose(aps, ranx_map, atol=1e-9)


def test_pessimistic_tie_rule_on_a_handmade_pool():
    # scores: candidate 3 highest, candidates 0, 1, 2 tie; 0 and 2 relevant
    pool = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    q = np.array([[0.6, 0.8]], dtype=np.float32)
    ranks = relevant_ranks(q, pool, [[2, 0]])[0]
    # after the higher candidate (rank 1) and the tied non-relevant one (rank 2); ties in input order
    assert ranks.tolist() == [3, 4]
    assert M.average_precision(ranks) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert M.rank_distance(ranks) == 1.0


def test_block_ranks_equal_ranks_in_each_sub_pool_and_the_whole_pool():
    rng = np.random.default_rng(5)
    q, pool = _unit(rng, 15), _unit(rng, 90)
    bounds = [0, 20, 20, 55, 90]  # one empty block
    rel = [np.array([rng.integers(0, 20), rng.integers(20, 55), rng.integers(55, 90)]) for _ in range(15)]
    pooled, own, top = block_ranks(q, pool, rel, bounds, top_k=5)
    full = relevant_ranks(q, pool, rel)
    for i in range(15):
        assert pooled[i].tolist() == full[i].tolist()
        for j, (lo, hi) in enumerate([(0, 20), (20, 55), (55, 90)]):
            sub = relevant_ranks(q[i:i + 1], pool[lo:hi], [[rel[i][j] - lo]])[0]
            assert own[i][j] == sub[0]
        assert top[i].tolist() == np.argsort(-(pool @ q[i]))[:5].tolist()


def test_rank_distance_needs_two_relevant():
    assert np.isnan(M.rank_distance([7]))
    assert M.rank_distance([40, 3, 12]) == 37.0
    np.testing.assert_array_equal(M.rank_distances([[1, 5], [2]]), [4.0, np.nan])


def test_bad_ranks_are_refused():
    with pytest.raises(ConfigError, match="distinct"):
        M.average_precision([2, 2])
    with pytest.raises(ConfigError):
        M.average_precision([0, 3])
    with pytest.raises(ConfigError, match="outside"):
        relevant_ranks(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32), [[5]])


def _closed_form(ranks, k=10):
    r = np.sort(np.asarray(ranks))
    top = r[r <= k]
    idcg = np.sum(1 / np.log2(np.arange(2, min(len(r), k) + 2)))
    return {"ndcg_at_10": np.sum(1 / np.log2(top + 1)) / idcg,
            "mrr_at_10": 1 / r[0] if r[0] <= k else 0.0,
            "recall_at_1": np.sum(r <= 1) / len(r), "recall_at_10": len(top) / len(r),
            "hit_rate_at_10": float(len(top) > 0)}


def test_topk_metrics_from_ranks_match_closed_forms():
    rng = np.random.default_rng(6)
    ranks = [rng.choice(25, rng.integers(1, 12), replace=False) + 1 for _ in range(40)] + [[1], [11]]
    got = M.topk_metrics(ranks)
    for i, r in enumerate(ranks):
        for name, value in _closed_form(r).items():
            assert got[name][i] == pytest.approx(value, abs=1e-12), (name, r)


def test_topk_metrics_equal_ranx_on_a_faiss_run():
    from ranx import Qrels, Run, evaluate

    q, pool, rel = _random_case(7, n_q=30, n_pool=40)
    scores, ids = topk_search(q, pool, k=10, threads=1)
    run = Run({f"q{i:03d}": {f"d{j}": float(s) for j, s in zip(ids[i], scores[i])} for i in range(len(q))})
    qrels = Qrels({f"q{i:03d}": {f"d{j}": 1 for j in r} for i, r in enumerate(rel)})
    expected = evaluate(qrels, run, list(M.TOPK_METRICS.values()), return_mean=False, threads=1)
    got = M.topk_metrics(relevant_ranks(q, pool, rel))
    for name, ranx_name in M.TOPK_METRICS.items():
        np.testing.assert_allclose(got[name], expected[ranx_name], atol=1e-6, err_msg=name)


def test_topk_search_caps_k_at_pool_size():
    rng = np.random.default_rng(8)
    scores, ids = topk_search(_unit(rng, 3), _unit(rng, 4), k=10, threads=1)
    assert ids.shape == (3, 4) and (ids >= 0).all()
    assert np.all(np.diff(scores, axis=1) <= 0)
