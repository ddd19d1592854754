"""Batch sampling: composition, determinism, dataset choice and bad input.

The fixture encodes provenance in its values: the parallel dataset uses the
fake languages a, b, c (every question language x passage language
combination of an item), the monolingual one uses d and e; an item's id
starts with its dataset's letter.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.errors import ConfigError, DataError
from lib.sampling import (BATCH_COLUMNS, Batch, BatchSampler, batch_summary, batches_frame, language_matrix,
                          validation_batches)

PAR_LANGS = ("a", "b", "c")
MONO_LANGS = ("d", "e")


def make_pairs(n_par: int = 12, n_mono: int = 10, n_val: int = 2) -> pd.DataFrame:
    """Parallel items (dataset mlqa_test, langs a b c) and monolingual ones (tydiqa, d e)."""
    rows = []
    for i in range(n_par):
        for q in PAR_LANGS:
            for d in PAR_LANGS:
                rows.append(dict(dataset="mlqa_test", item_id=f"p{i}", article=f"pa{i}", query_lang=q,
                                 doc_lang=d, query=f"{q}{i % 10} {q}{i // 10} ?",
                                 passage=f"{d}{i // 10} {d}{i % 10} .",
                                 split="val" if i >= n_par - n_val else "train"))
    for lang in MONO_LANGS:
        for j in range(n_mono):
            rows.append(dict(dataset="tydiqa", item_id=f"t{lang}{j}", article=f"t{lang}{j}", query_lang=lang,
                             doc_lang=lang, query=f"{lang}{j % 10} {lang}{j // 10} ?",
                             passage=f"{lang}{j // 10} {lang}{j % 10} .",
                             split="val" if j >= n_mono - n_val else "train"))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return make_pairs()


def sigma_ok(count: int, n: int, p: float, k: float = 4.0) -> bool:
    """``count`` successes out of ``n`` lie within k binomial sigmas of ``n * p``."""
    return abs(count - n * p) <= k * np.sqrt(n * p * (1 - p)) + 1e-9


def test_mono_batches_are_one_language(pairs):
    for batch in BatchSampler(pairs, "mono", batch_size=4, seed=3).batches(300):
        sub = pairs.iloc[list(batch.indices)]
        assert batch.kind == "mono" and len(batch) == 4
        assert (sub["query_lang"] == sub["doc_lang"]).all()
        assert set(sub["query_lang"]) == {batch.language}
        assert set(sub["dataset"]) == {batch.dataset}


def test_cross_batches_cross_languages(pairs):
    for batch in BatchSampler(pairs, "cross", batch_size=4, seed=3).batches(300):
        sub = pairs.iloc[list(batch.indices)]
        assert batch.kind == "cross" and batch.language is None
        assert (sub["query_lang"] != sub["doc_lang"]).all()
        assert batch.dataset == "mlqa_test" and set(sub["dataset"]) == {"mlqa_test"}


@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_hybrid_mono_share_matches_alpha(pairs, alpha):
    batches = BatchSampler(pairs, "hybrid", batch_size=4, alpha=alpha, seed=1).batches(2000)
    n_mono = sum(b.kind == "mono" for b in batches)
    assert sigma_ok(n_mono, 2000, alpha), n_mono
    kinds = {b.kind for b in batches[:100]}
    assert kinds == {"mono", "cross"}


def test_hybrid_extremes_equal_pure_strategies(pairs):
    assert {b.kind for b in BatchSampler(pairs, "hybrid", 4, alpha=1.0).batches(200)} == {"mono"}
    assert {b.kind for b in BatchSampler(pairs, "hybrid", 4, alpha=0.0).batches(200)} == {"cross"}


@pytest.mark.parametrize("strategy", ["mono", "cross", "hybrid"])
def test_no_item_or_passage_twice_in_a_batch(pairs, strategy):
    for batch in BatchSampler(pairs, strategy, batch_size=8, seed=0).batches(300):
        sub = pairs.iloc[list(batch.indices)]
        assert sub["item_id"].is_unique and sub["passage"].is_unique
        assert (sub["split"] == "train").all()


def test_determinism_seed_and_epoch(pairs):
    a = BatchSampler(pairs, "hybrid", batch_size=4, seed=0)
    b = BatchSampler(pairs, "hybrid", batch_size=4, seed=0)
    assert a.batches(50) == b.batches(50)
    assert a.epoch_batches(0) != a.epoch_batches(1)
    seed1 = BatchSampler(pairs, "hybrid", batch_size=4, seed=1)
    assert a.epoch_batches(0) != seed1.epoch_batches(0)  # seed=0 is a seed, not "no seed"


def test_len_iter_and_epochs(pairs):
    s = BatchSampler(pairs, "mono", batch_size=4, seed=5)
    assert len(list(s)) == len(s) == s.steps_per_epoch
    n_train_mono = int(((pairs["split"] == "train") & (pairs["query_lang"] == pairs["doc_lang"])).sum())
    assert len(s) == n_train_mono // 4
    s.set_epoch(2)
    assert list(s) == s.epoch_batches(2)
    spanning = s.batches(2 * len(s) + 3)
    assert spanning == s.epoch_batches(0) + s.epoch_batches(1) + s.epoch_batches(2)[:3]
    assert len(BatchSampler(pairs, "cross", 4, steps_per_epoch=7).epoch_batches(0)) == 7


def test_pool_served_before_repeats():
    one = make_pairs(n_par=0, n_mono=12, n_val=0)
    one = one[one["query_lang"] == "d"].reset_index(drop=True)
    s = BatchSampler(one, "mono", batch_size=4, seed=2)
    rows = [r for b in s.epoch_batches(0)[:3] for r in b.indices]
    assert sorted(rows) == list(range(12))


@pytest.mark.parametrize("choice", ["size", "uniform"])
def test_dataset_choice(pairs, choice):
    s = BatchSampler(pairs, "mono", batch_size=4, seed=7, dataset_choice=choice)
    train = pairs[(pairs["split"] == "train") & (pairs["query_lang"] == pairs["doc_lang"])]
    sizes = train["dataset"].value_counts()
    p_mlqa = sizes["mlqa_test"] / sizes.sum() if choice == "size" else 0.5
    table = s.dataset_probabilities().set_index("dataset")
    assert table.loc["mlqa_test", "probability"] == pytest.approx(p_mlqa)
    batches = s.batches(2000)
    assert sigma_ok(sum(b.dataset == "mlqa_test" for b in batches), 2000, p_mlqa)
    # the language of a mono batch is uniform among its dataset's languages
    tydi = [b.language for b in batches if b.dataset == "tydiqa"]
    assert sigma_ok(tydi.count("d"), len(tydi), 0.5)


def test_batches_frame(pairs):
    s = BatchSampler(pairs, "hybrid", batch_size=4, seed=0)
    batches = s.batches(10)
    frame = batches_frame(pairs, batches)
    assert list(frame.columns) == BATCH_COLUMNS and len(frame) == 40
    assert frame["step"].tolist() == [s for s in range(1, 11) for _ in range(4)]
    summary = batch_summary(frame)
    mono = summary["batch_kind"] == "mono"
    assert (summary.loc[mono, "query_langs"] == 1).all() and (summary.loc[mono, "mono_pair_share"] == 1).all()
    assert (summary.loc[~mono, "mono_pair_share"] == 0).all()
    assert isinstance(batches[0], Batch)
    matrix = language_matrix(frame, list("abcde"))
    assert matrix.to_numpy().sum() == pytest.approx(1.0) and list(matrix.index) == list("abcde")
    mono_only = language_matrix(batches_frame(pairs, BatchSampler(pairs, "mono", 4).batches(20)), list("abcde"))
    assert np.allclose(mono_only.to_numpy(), np.diag(np.diag(mono_only.to_numpy())))


def test_validation_batches_fixed_and_clean(pairs):
    val = validation_batches(pairs, batch_size=4, max_pairs=20)
    assert val == validation_batches(pairs, batch_size=4, max_pairs=20)
    rows = [r for b in val for r in b]
    assert len(rows) == len(set(rows)) <= 20 and all(2 <= len(b) <= 4 for b in val)
    assert (pairs.iloc[rows]["split"] == "val").all()
    for b in val:
        sub = pairs.iloc[list(b)]
        assert sub["item_id"].is_unique and sub["passage"].is_unique
    assert validation_batches(pairs.drop(columns="split"), 4) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(strategy="bilingual"), "strategy='bilingual'"),
    (dict(strategy="hybrid", alpha=1.5), "alpha=1.5"),
    (dict(strategy="hybrid", alpha=-0.1), "alpha=-0.1"),
    (dict(strategy="hybrid", alpha=True), "alpha=True"),
    (dict(strategy="mono", batch_size=1), "batch_size=1"),
    (dict(strategy="mono", seed=-1), "seed=-1"),
    (dict(strategy="mono", dataset_choice="random"), "dataset_choice='random'"),
    (dict(strategy="mono", batch_size=9, small_pools="error"),
     r"batch_size=9 .*dataset 'tydiqa', language 'd': 8 pairs"),
    (dict(strategy="cross", batch_size=11, small_pools="error"), r"cross pool of dataset 'mlqa_test'.* 10 distinct"),
    (dict(strategy="cross", batch_size=11), r"every cross pool .* smaller than batch_size=11"),
    (dict(strategy="mono", small_pools="drop"), "small_pools='drop'"),
])
def test_bad_options(pairs, kwargs, match):
    args = dict(batch_size=4) | kwargs
    with pytest.raises(ConfigError, match=match):
        BatchSampler(pairs, **args)


def test_small_pools_are_skipped_with_a_warning(pairs):
    small = pairs[~pairs["item_id"].isin([f"te{j}" for j in range(2, 8)])]  # language e: 2 train items
    with pytest.warns(UserWarning, match=r"left out: tydiqa/mono/e \(2\)"):
        s = BatchSampler(small, "mono", batch_size=4, seed=0)
    assert s.skipped == [{"dataset": "tydiqa", "kind": "mono", "language": "e", "pairs": 2, "distinct": 2}]
    assert {b.language for b in s.batches(200)} == {"a", "b", "c", "d"}
    table = s.dataset_probabilities().set_index("dataset")
    assert table.loc["tydiqa", "pairs"] == 8  # sizes count usable pools only


def test_strategy_the_data_cannot_serve(pairs):
    mono_only = pairs[pairs["dataset"] == "tydiqa"]
    with pytest.raises(ConfigError, match="needs cross batches"):
        BatchSampler(mono_only, "cross", batch_size=4)
    with pytest.raises(ConfigError, match="needs cross batches"):
        BatchSampler(mono_only, "hybrid", batch_size=4, alpha=0.5)
    BatchSampler(mono_only, "hybrid", batch_size=4, alpha=1.0)  # all mono: fine
    cross_only = pairs[pairs["query_lang"] != pairs["doc_lang"]]
    with pytest.raises(ConfigError, match="needs mono batches"):
        BatchSampler(cross_only, "mono", batch_size=4)
    with pytest.raises(DataError, match="item_id"):
        BatchSampler(pairs.drop(columns="item_id"), "mono", batch_size=4)
