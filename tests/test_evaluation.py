"""The evaluation protocol on a tiny synthetic multilingual set (tiny random encoder)."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from lib import evaluation as E
from lib import machine
from lib import metrics as M
from lib import models
from lib import paper_tables
from lib import retrieval as R
from lib.errors import ConfigError, ModelError
from lib.retrieval import block_ranks

LANGS = ("a", "b", "c")  # fake languages: language x writes words x0..x9


def tiny_set(n_items: int = 6, missing=(("c", 5),), distractors: int = 2):
    """Items 0..n-1 in languages a, b, c; item 5 has no 'c' version (like MLQA-R)."""
    queries, docs, qrels = [], [], []
    for lang in LANGS:
        for k in range(n_items):
            if (lang, k) in missing:
                continue
            w1, w2 = f"{lang}{k}", f"{lang}{(k + 1) % 10}"
            queries.append((f"{lang}-q{k}", f"item{k}", lang, f"what {w1} {w2} ?"))
            docs.append((f"{lang}-d{k}", lang, f"{w1} {w2} is it ."))
            qrels.append((f"{lang}-q{k}", f"{lang}-d{k}"))
            for j in range(distractors):
                docs.append((f"{lang}-d{k}x{j}", lang, f"{lang}{(k + 3 + j) % 10} the of ."))
    return types.SimpleNamespace(
        queries=pd.DataFrame(queries, columns=["qid", "item_id", "lang", "text"]),
        docs=pd.DataFrame(docs, columns=["doc_id", "lang", "text"]),
        qrels=pd.DataFrame(qrels, columns=["qid", "doc_id"]))


@pytest.fixture
def results(results_in_tmp):
    """Redirect results/<profile>/ into a temporary folder."""
    return results_in_tmp


def test_layout_expands_relevance_to_every_language_version():
    lay = E.layout(tiny_set())
    assert lay.langs == ["a", "b", "c"]
    assert list(lay.docs["lang"]) == sorted(lay.docs["lang"])
    doc_langs = lay.docs["lang"].to_numpy()
    by_qid = dict(zip(lay.queries["qid"], lay.relevant))
    assert sorted(doc_langs[by_qid["a-q0"]]) == ["a", "b", "c"]
    assert sorted(doc_langs[by_qid["b-q5"]]) == ["a", "b"]  # item 5 has no 'c' version


def test_known_answer_with_handmade_embeddings():
    """Queries equal to their item's vector, candidates = item vector + a language offset:
    mono and cross are perfect; the multilingual ranking puts same-language candidates first."""
    data = tiny_set(n_items=4, missing=(), distractors=0)
    lay = E.layout(data)
    item_vec = np.eye(8, dtype=np.float32)[:4]
    lang_vec = {lang: np.eye(8, dtype=np.float32)[4 + i] for i, lang in enumerate(LANGS)}
    item_of_doc = lay.docs["doc_id"].str.extract(r"d(\d)")[0].astype(int).to_numpy()
    docs = item_vec[item_of_doc] + 0.3 * np.stack([lang_vec[x] for x in lay.docs["lang"]])
    qs = item_vec[lay.queries["item_id"].str[-1].astype(int)] + 0.2 * np.stack(
        [lang_vec[x] for x in lay.queries["lang"]])
    pool, own, top = block_ranks(qs, docs, lay.relevant, lay.bounds, top_k=3)
    per_query = E.per_query_frame(lay, pool, own, top)
    rows = E.aggregate(per_query, lay.langs)
    maps = rows[rows["metric"] == "map"].set_index(["setting", "query_lang", "doc_lang"])["value"]
    assert (maps[["mono", "cross"]] == 1.0).all()
    assert (maps["multi"] == 1.0).all()  # the 3 versions of the item come first, own language on top
    multi = per_query[per_query["setting"] == "multi"]
    assert all(r.tolist() == [1, 2, 3] for r in multi["relevant_ranks"])
    assert all(langs[0] == q for langs, q in zip(multi["relevant_langs"], multi["query_lang"]))
    assert (multi["rank_distance"] == 2).all() and (multi["top10_same_lang"] == 1).all()


def test_evaluate_model_writes_consistent_files(results, tiny_encoder):
    data = tiny_set()
    rows = E.evaluate_model(tiny_encoder, "tiny", "mlqa_r", "unit", data=data)
    counts = rows[rows["metric"] == "map"].groupby("setting").size().to_dict()
    assert counts == {"mono": 3, "cross": 6, "multi": 3}
    assert set(rows.loc[rows["setting"] == "multi", "metric"]) >= {"map", "rank_distance", "recall_at_10"}
    assert "rank_distance" not in set(rows.loc[rows["setting"] != "multi", "metric"])
    assert rows["strategy"].eq("zero-shot").all() and rows["alpha"].isna().all() and (rows["layers"] == 2).all()
    n = rows[(rows["metric"] == "map")].set_index(["setting", "query_lang", "doc_lang"])["n_queries"]
    assert n[("cross", "a", "c")] == 5 and n[("cross", "a", "b")] == 6 and n[("multi", "c", "all")] == 5

    # AP and rank distance recomputed from the stored ranks match metrics.csv
    metrics = E.load_metrics("unit")
    per_query = E.load_per_query("unit", "tiny", "mlqa_r")
    per_query["ap2"] = [M.average_precision(r) for r in per_query["relevant_ranks"]]
    per_query["rd2"] = [M.rank_distance(r) for r in per_query["relevant_ranks"]]
    np.testing.assert_allclose(per_query["ap2"], per_query["ap"], atol=1e-12)
    keys = ["setting", "query_lang", "doc_lang"]
    recomputed = per_query.groupby(keys)[["ap2", "rd2"]].mean()
    stored = metrics.pivot_table(index=keys, columns="metric", values="value")
    np.testing.assert_allclose(stored.loc[recomputed.index, "map"], recomputed["ap2"], atol=1e-6)
    multi = recomputed.xs("multi", level="setting", drop_level=False).index
    np.testing.assert_allclose(stored.loc[multi, "rank_distance"], recomputed.loc[multi, "rd2"], atol=1e-6)
    manifest = json.loads((results / "unit" / "evaluations.json").read_text())
    assert manifest["profile"] == "unit" and "tiny__mlqa_r" in manifest["entries"]


def test_upsert_replaces_same_model_and_dataset_only(results, tiny_encoder):
    data = tiny_set()
    E.evaluate_model(tiny_encoder, "one", "mlqa_r", "unit", data=data)
    E.evaluate_model(tiny_encoder, "one", "xquad_r", "unit", data=data)
    E.evaluate_model(tiny_encoder, "two", "mlqa_r", "unit", data=data)
    before = E.load_metrics("unit")
    again = E.evaluate_model(tiny_encoder, "one", "mlqa_r", "unit", data=tiny_set(n_items=4))
    after = E.load_metrics("unit")
    assert len(after) == len(before)  # same cells, replaced not appended
    kept = after[after["model"] == "two"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before[before["model"] == "two"].reset_index(drop=True))
    new = after[(after["model"] == "one") & (after["dataset"] == "mlqa_r") & (after["metric"] == "map")]
    assert new["n_queries"].max() == again[again["metric"] == "map"]["n_queries"].max() == 4
    # every evaluation keeps its time and the machine; one that reads cached embeddings says so
    times = E.evaluation_times("unit").set_index(["model", "dataset"])
    assert sorted(times.index) == [("one", "mlqa_r"), ("one", "xquad_r"), ("two", "mlqa_r")]
    assert (times["seconds"] >= times["encode_seconds"]).all() and (times["encode_seconds"] >= 0).all()
    assert times["cpu_model"].eq(machine.cpu_model()).all() and times["precision"].isin(["bf16", "fp32"]).all()
    assert times["encoded"].all() and len(E.evaluation_times("unit", ["two"])) == 1
    E.evaluate_model(tiny_encoder, "two", "mlqa_r", "unit", data=data)
    assert not E.evaluation_times("unit", ["two"])["encoded"].iloc[0]


def test_embedding_cache_hits_and_invalidates(results, tiny_encoder):
    calls = []

    class Counting:
        def encode(self, texts, role, **kw):
            calls.append((role, len(texts)))
            return tiny_encoder.encode(texts, role, **kw)

    kw = dict(profile="unit", model="m", dataset="d", model_fp="fp1")
    first = R.encode_cached(Counting(), ["a1 a2", "b1"], "query", **kw)
    again = R.encode_cached(Counting(), ["a1 a2", "b1"], "query", **kw)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    R.encode_cached(Counting(), ["a1 a2", "b2"], "query", **kw)            # texts changed
    R.encode_cached(Counting(), ["a1 a2", "b2"], "query", **{**kw, "model_fp": "fp2"})  # model changed
    assert len(calls) == 3
    loader_calls = []
    R.encode_cached(lambda: loader_calls.append(1), ["a1 a2", "b2"], "query", **{**kw, "model_fp": "fp2"})
    assert loader_calls == []  # a hit never loads the model


def test_embedding_cache_keeps_precisions_apart(results, tiny_encoder, monkeypatch):
    """Embeddings made in bf16 never stand in for fp32 ones (and back): the precision is in the key."""
    calls = []

    class Counting:
        def encode(self, texts, role, **kw):
            calls.append(role)
            return tiny_encoder.encode(texts, role, **kw)

    kw = dict(profile="unit", model="m", dataset="d", model_fp="fp1")
    monkeypatch.setenv("HBT_BF16", "1")
    R.encode_cached(Counting(), ["a1 a2", "b1"], "query", **kw)
    monkeypatch.setenv("HBT_BF16", "0")
    R.encode_cached(Counting(), ["a1 a2", "b1"], "query", **kw)
    assert len(calls) == 2
    R.encode_cached(Counting(), ["a1 a2", "b1"], "query", **kw)
    assert len(calls) == 2


def test_trained_run_folder_metadata(tmp_path, tiny_encoder):
    run = tmp_path / "hybrid_a0.5_s3"
    tiny_encoder.save(run / "model")
    (run / "train_config.json").write_text(json.dumps({"strategy": "hybrid", "alpha": 0.5, "seed": 3}))
    spec = models.describe_model(str(run))
    assert (spec.name, spec.strategy, spec.alpha, spec.seed, spec.layers) == ("hybrid_a0.5_s3", "hybrid", 0.5, 3, 2)
    (run / "train_config.json").write_text(json.dumps({"strategy": "cross", "alpha": 0.0, "seed": 3}))
    assert models.describe_model(str(run)).alpha == 0.0
    assert models.describe_model(str(run)).fingerprint != spec.fingerprint


def test_bad_inputs_get_clear_errors(results, tiny_encoder):
    with pytest.raises(ModelError, match="does not exist"):
        models.describe_model("results/unit/models/no_such_run")
    with pytest.raises(ConfigError, match=r"dataset='squad' is not evaluated .* use one of .*'xquad_r'"):
        E.evaluate_model(tiny_encoder, "tiny", "squad", "unit", data=tiny_set())
    with pytest.raises(ConfigError, match="model_name"):
        models.describe_model(tiny_encoder)
    with pytest.raises(ConfigError, match="does not exist"):
        E.load_metrics("unit")


def test_metrics_file_of_another_profile_is_refused(results, tiny_encoder):
    E.evaluate_model(tiny_encoder, "tiny", "mlqa_r", "smoke", data=tiny_set())
    (results / "default").mkdir()
    (results / "default" / "metrics.csv").write_bytes((results / "smoke" / "metrics.csv").read_bytes())
    with pytest.raises(ConfigError, match="profile"):
        E.load_metrics("default")


def test_macro_average_of_cross_is_the_mean_over_pairs():
    cells = {("a", "b"): 0.2, ("a", "c"): 0.4, ("b", "a"): 0.6, ("b", "c"): 0.8, ("c", "a"): 0.1, ("c", "b"): 0.3}
    rows = pd.DataFrame([dict(model="m", strategy="mono", alpha=1.0, seed=0, layers=2, dataset="mlqa_r",
                              setting="cross", query_lang=x, doc_lang=y, metric="map", value=v, n_queries=5)
                         for (x, y), v in cells.items()])
    macro = paper_tables.macro_average(rows)
    assert macro["value"].item() == pytest.approx(np.mean(list(cells.values())))
    assert macro["n_cells"].item() == 6


@pytest.mark.real_data
def test_subset_keeps_every_protocol_cell():
    from lib.data import load_lareqa
    from lib.data_files import LANGS

    for name, n_langs in (("xquad_r", 11), ("mlqa_r", 7)):
        lay = E.layout(load_lareqa(name, max_items=30))
        assert E.protocol_langs(name, lay) == sorted(LANGS[name])
        rng = np.random.default_rng(0)
        q = rng.standard_normal((len(lay.queries), 8)).astype(np.float32)
        d = rng.standard_normal((len(lay.docs), 8)).astype(np.float32)
        pool, own, top = block_ranks(q, d, lay.relevant, lay.bounds, top_k=10)
        rows = E.aggregate(E.per_query_frame(lay, pool, own, top), E.protocol_langs(name, lay))
        counts = rows[rows["metric"] == "map"].groupby("setting").size().to_dict()
        assert counts == {"mono": n_langs, "cross": n_langs * (n_langs - 1), "multi": n_langs}
        if name == "xquad_r":  # every XQuAD-R item exists in all 11 languages
            assert (rows.loc[rows["metric"] == "map", "n_queries"] > 0).all()


def test_evaluate_all_evaluates_matching_runs_once(results, tiny_encoder, monkeypatch):
    monkeypatch.setattr(E, "load_lareqa", lambda name, langs=None, max_items=0: tiny_set())
    runs = results / "unit" / "models"
    for name, layers in (("mono_s0", 0), ("hybrid_a0.5_s0", 0), ("mono_s0_L1", 1)):
        tiny_encoder.save(runs / name / "model")
        strategy = name.split("_")[0]
        (runs / name / "train_config.json").write_text(json.dumps(
            {"backbone": "embedded", "num_layers": layers, "strategy": strategy, "alpha": 0.5, "seed": 0}))
    metrics = E.evaluate_all("unit", datasets="mlqa_r", zero_shot=False, progress=False)
    assert set(metrics["model"]) == {"mono_s0", "hybrid_a0.5_s0"}  # the L1 run has another depth
    assert set(metrics.loc[metrics["model"] == "mono_s0", "alpha"]) == {1.0}
    pq = E.per_query_path("unit", "mono_s0", "mlqa_r")
    stamp = pq.stat().st_mtime_ns
    E.evaluate_all("unit", datasets="mlqa_r", zero_shot=False, progress=False)
    assert pq.stat().st_mtime_ns == stamp  # up to date: skipped
    cfg = runs / "mono_s0" / "train_config.json"
    cfg.write_text(cfg.read_text().replace('"seed": 0', '"seed": 7'))
    metrics = E.evaluate_all("unit", datasets="mlqa_r", zero_shot=False, progress=False)
    assert pq.stat().st_mtime_ns != stamp
    assert set(metrics.loc[metrics["model"] == "mono_s0", "seed"]) == {7.0}
    with pytest.raises(ModelError, match="not found"):
        E.evaluate_all("unit", datasets="mlqa_r", models=["cross_s0"], zero_shot=False)
