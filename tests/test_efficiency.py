"""Index sweeps, errors, sizes and the language-clustering measure on synthetic clustered embeddings."""
from __future__ import annotations

import json
import os

import faiss
import numpy as np
import pandas as pd
import pytest

from lib import clustering as clu
from lib import efficiency as eff
from lib import efficiency_report as figures
from lib import efficiency_tables_report as report
from lib import encoding_cost as cost
from lib import indexes as idx
from lib.errors import ConfigError
from lib.metric_registry import family

DIM = 32


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """One OpenMP thread: tiny searches gain nothing from more, and spin-waiting threads crawl when
    other jobs share the cores."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """600 docs around 12 random centres; 60 queries = noisy copies of docs, each relevant to its source."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((12, DIM))
    docs = unit(centres[rng.integers(0, 12, 600)] + 0.4 * rng.standard_normal((600, DIM)))
    src = rng.choice(600, 60, replace=False)
    queries = unit(docs[src] + 0.05 * rng.standard_normal((60, DIM)))
    qids = [f"q{i}" for i in range(60)]
    doc_ids = [f"d{i}" for i in range(600)]
    qrels = pd.DataFrame({"qid": qids, "doc_id": [doc_ids[s] for s in src]})
    return queries, docs, qids, doc_ids, qrels


def small_specs(n_docs: int) -> list[idx.IndexSpec]:
    return idx.default_specs(n_docs, DIM, nprobes=(1, 4, 1000), ef_searches=(16, 64),
                             pq=((8, 8), (7, 8), (16, 4)), dims=(64, 16, 8), pq_min_points=2)


def test_default_specs_leave_out_what_cannot_apply():
    specs = small_specs(600)
    nlist = idx.ivf_nlist(600)
    ivf = [s for s in specs if s.family == "ivf"][0]
    assert ivf.factory == f"IVF{nlist},Flat" and ivf.values == (1, 4)  # 1000 > nlist left out
    assert sorted(s.factory for s in specs if s.family == "pq") == ["PQ16x4np", "PQ8x8np"]  # 7 does not divide 32
    assert [s.dim for s in specs if s.family == "trunc"] == [16, 8]  # 64 > 32 left out
    assert not [s for s in idx.default_specs(500, DIM, pq=((8, 8),), pq_min_points=2) if s.family == "pq"]
    assert [s.factory for s in idx.default_specs(1000, DIM, pq=((8, 8), (16, 4))) if s.family == "pq"] == [
        "PQ16x4np"]  # 8 bits need 39 * 256 vectors by default, 4 bits 39 * 16


def test_sweep_rows_quality_and_columns(clustered):
    queries, docs, qids, doc_ids, qrels = clustered
    rows = eff.sweep(queries, docs, qids, doc_ids, qrels, small_specs(len(docs)), n_latency=8, repeats=1,
                     warmup=1, progress=False)
    assert list(rows.columns) == ["index", "param", "value_name", "value"]
    tagged = eff.tag_rows(rows, "m", "hybrid", "synthetic")
    assert list(tagged.columns) == eff.COLUMNS
    points = report.wide(tagged)
    assert set(points["index"]) == {"exact", "ivf", "hnsw", "pq", "sq", "trunc"}
    needed = {eff.OVERLAP, *idx.DUREADER_METRICS, "latency_ms_p50", "latency_ms_p95", "batch_qps_p50",
              "index_bytes", "bytes_per_vector", "build_s"}
    assert needed <= set(points.columns) and not points[sorted(needed)].isna().any().any()
    exact = points[points["index"] == "exact"].iloc[0]
    # overlap against a numpy brute-force top 10 (not the library's exact index compared with itself)
    true_top = np.argsort(-(queries.astype(np.float64) @ docs.astype(np.float64).T), axis=1)[:, :10]
    for dim in (16, 8):
        q, d = (x[:, :dim] / np.linalg.norm(x[:, :dim], axis=1, keepdims=True) for x in (queries, docs))
        top = np.argsort(-(q.astype(np.float64) @ d.astype(np.float64).T), axis=1)[:, :10]
        want = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, true_top)])
        assert points.set_index("param").loc[f"dim={dim}", eff.OVERLAP] == pytest.approx(want, abs=0.01), dim
    assert exact[eff.OVERLAP] == 1.0
    assert exact["recall_at_50"] == 1.0 and exact["mrr_at_10"] > 0.9  # queries are near-copies of their docs
    assert exact["bytes_per_vector"] >= 4 * DIM
    sq = points.set_index("param").loc["qtype=fp16"]
    assert sq[eff.OVERLAP] > 0.95
    ivf = points[points["index"] == "ivf"].sort_values("param")
    assert ivf[eff.OVERLAP].max() > ivf[eff.OVERLAP].min()  # probing more cells finds more
    coarse = points.set_index("param").loc["dim=8"]
    assert coarse[eff.OVERLAP] < 0.95  # 8 of 32 dimensions lose neighbours
    assert (points["latency_ms_p5"] <= points["latency_ms_p95"]).all()


def test_exact_search_recovers_itself(clustered):
    _, docs, _, doc_ids, _ = clustered
    qrels = pd.DataFrame({"qid": doc_ids[:40], "doc_id": doc_ids[:40]})
    rows = eff.sweep(docs[:40], docs, doc_ids[:40], doc_ids, qrels, [idx.IndexSpec("exact", "Flat", "dim=32")],
                     n_latency=5, repeats=1, warmup=0, progress=False)
    values = rows.set_index("value_name")["value"]
    assert values[eff.OVERLAP] == 1.0 and values["recall_at_1"] == 1.0 and values["mrr_at_10"] == 1.0


def test_truncation_renormalises_and_rejects_wide_dims(clustered):
    docs = clustered[1]
    cut = idx.truncate(docs, 8)
    assert cut.shape == (600, 8) and np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)
    with pytest.raises(ConfigError, match="dim=64.*32-dimensional"):
        idx.truncate(docs, 64)
    with pytest.raises(ConfigError, match="dim=0"):
        idx.truncate(docs, 0)
    queries, docs, qids, doc_ids, qrels = clustered
    with pytest.raises(ConfigError, match="truncation dim=48 is larger than the embedding width 32"):
        eff.sweep(queries, docs, qids, doc_ids, qrels, [idx.IndexSpec("trunc", "Flat", "dim=48", dim=48)])


def test_nprobe_larger_than_nlist_is_rejected(clustered):
    queries, docs, qids, doc_ids, qrels = clustered
    index, _ = idx.build_index("IVF16,Flat", docs)
    idx.set_knob(index, "nprobe", 16)
    assert faiss.extract_index_ivf(index).nprobe == 16
    with pytest.raises(ConfigError, match="nprobe=32 is larger than nlist=16"):
        idx.set_knob(index, "nprobe", 32)
    spec = idx.IndexSpec("ivf", "IVF16,Flat", "nlist=16", "nprobe", (1, 64))
    with pytest.raises(ConfigError, match=r"nprobe \[64\] larger than nlist=16"):
        eff.sweep(queries, docs, qids, doc_ids, qrels, [spec])
    with pytest.raises(ConfigError, match="efSearch applies to HNSW"):
        idx.set_knob(index, "efSearch", 16)


@pytest.mark.parametrize("factory, fragment", [("Foo12", "could not parse"), ("PQ7x8", "multiple")])
def test_bad_factory_string_names_it(factory, fragment):
    with pytest.raises(ConfigError, match=f"'{factory}'.*{fragment}"):
        idx.make_index(factory, DIM)


def test_untrainable_index_is_a_config_error(clustered):
    with pytest.raises(ConfigError, match="IVF5000,Flat.*600 vectors"):
        idx.build_index("IVF5000,Flat", clustered[1])


def test_sq8_stores_one_byte_per_dimension(clustered):
    index, _ = idx.build_index("SQ8", clustered[1])
    size = idx.index_size(index)
    assert size["code_bytes_per_vector"] == DIM
    assert DIM <= size["bytes_per_vector"] < DIM * 1.1  # plus the trained ranges and a header
    flat = idx.index_size(idx.build_index("Flat", clustered[1])[0])
    assert flat["code_bytes_per_vector"] == 4 * DIM


def language_pool(separated: bool, n_per_lang: int = 150, langs: str = "abcdef"):
    """Parallel items in 6 fake languages: language-separated (a big per-language offset) or mixed."""
    rng = np.random.default_rng(1)
    items = rng.standard_normal((n_per_lang, DIM))
    offsets = rng.standard_normal((len(langs), DIM)) * (3.0 if separated else 0.0)
    emb = np.concatenate([items + off + 0.1 * rng.standard_normal(items.shape) for off in offsets])
    labels = np.repeat(list(langs), n_per_lang)
    return unit(emb), labels


def test_clustering_is_high_for_separated_languages_and_low_for_mixed():
    sep = clu.language_clustering(*language_pool(True), nlist=30, sample=600)
    mix = clu.language_clustering(*language_pool(False), nlist=30, sample=600)
    assert sep["silhouette"] > 0.5 and mix["silhouette"] < 0.05
    assert sep["cells_dom80"] > 0.9 and mix["cells_dom50"] < 0.1
    assert sep["cell_entropy"] < 0.2 < 0.8 < mix["cell_entropy"]
    assert sep["cell_entropy_shuffled"] > 0.8  # the shuffled-label baseline is near the mixed value
    with pytest.raises(ConfigError, match="two languages"):
        clu.language_clustering(np.eye(4, dtype=np.float32), ["a"] * 4)


def test_write_rows_upserts_by_model_and_dataset(tmp_path):
    def rows(model, dataset, value):
        return pd.DataFrame([(model, "mono", 1.0, 0.0, dataset, "exact", "dim=32", "x", value)], columns=eff.COLUMNS)

    path = tmp_path / "efficiency.csv"
    facts = rows("m2", "d", float("nan")).assign(index="facts", param="")
    eff.write_rows(pd.concat([rows("m1", "d", 1.0), rows("m2", "d", 2.0), rows("m1", "e", 3.0), facts]), path)
    table = eff.write_rows(rows("m1", "d", 9.0), path)
    back = pd.read_csv(path)
    assert list(back.columns) == eff.COLUMNS and len(back) == 4 == len(table)
    assert back["value"].dtype == float and back["value"].isna().sum() == 1  # NaN stays a number
    back = back.dropna(subset=["value"])
    got = {(m, d): v for m, d, v in zip(back["model"], back["dataset"], back["value"])}
    assert got == {("m1", "d"): 9.0, ("m2", "d"): 2.0, ("m1", "e"): 3.0}
    with pytest.raises(ConfigError, match="lack column"):
        eff.write_rows(pd.DataFrame({"model": ["m"]}), path)


def test_pareto_front_keeps_undominated_points():
    pts = pd.DataFrame({"cost": [1, 2, 3, 4, 5], "q": [0.5, 0.4, 0.8, 0.8, 0.9]})
    assert report.pareto_front(pts, "cost", "q")["cost"].tolist() == [1, 3, 5]


def test_find_models_takes_every_run_of_the_backbone_and_depth(tmp_path, monkeypatch):
    import lib.models

    monkeypatch.setattr(lib.models, "results_dir", lambda profile: tmp_path)
    for name, strategy, seed, alpha, layers in [
            ("mono_s0_L2", "mono", 0, 1.0, 2), ("mono_s1_L2", "mono", 1, 1.0, 2), ("hybrid_a0.5_s1_L2", "hybrid", 1, 0.5, 2),
            ("hybrid_a0.5_s0_L2", "hybrid", 0, 0.5, 2), ("hybrid_a0.3_s0_L2", "hybrid", 0, 0.3, 2),
            ("cross_s0_L2", "cross", 0, 0.0, 2), ("mono_s0_L1", "mono", 0, 1.0, 1)]:
        run = tmp_path / "models" / name
        (run / "model").mkdir(parents=True)
        (run / "train_config.json").write_text(json.dumps({"strategy": strategy, "seed": seed, "alpha": alpha,
                                                           "num_layers": layers}))
    refs = eff.find_models("x", "embedded", 2)
    # every seed and both hybrid alphas, in display order (strategy, alpha, seed); the 1-layer run is not this depth
    assert [r.name for r in refs] == ["zero-shot_L2", "mono_s0_L2", "mono_s1_L2", "cross_s0_L2", "hybrid_a0.3_s0_L2",
                                      "hybrid_a0.5_s0_L2", "hybrid_a0.5_s1_L2"]
    assert [(r.strategy, r.seed) for r in refs[4:]] == [("hybrid", 0), ("hybrid", 0), ("hybrid", 1)]
    assert [r.alpha for r in refs[4:]] == [0.3, 0.5, 0.5]
    assert [r.name for r in eff.find_models("x", models="mono_s1_L2, zero-shot")] == ["mono_s1_L2", "zero-shot"]
    with pytest.raises(ConfigError, match="'nope'.*found: \\['cross_s0_L2'"):
        eff.find_models("x", models="nope")


def test_name_identity_reads_old_files(tmp_path):
    """Files written before the alpha / seed columns get them from the run names, and are upserted."""
    assert eff.name_identity("hybrid_a0.25_s2_L2", "hybrid") == (0.25, 2.0)
    assert eff.name_identity("mono_s1", "mono") == (1.0, 1.0)
    assert eff.name_identity("cross_s0_L6", "cross") == (0.0, 0.0)
    assert all(np.isnan(eff.name_identity("zero-shot_L2", "zero-shot")))
    path = tmp_path / "efficiency.csv"
    old = pd.DataFrame([("hybrid_a0.25_s2", "hybrid", "d", "exact", "dim=8", "x", 1.0),
                        ("zero-shot", "zero-shot", "d", "exact", "dim=8", "x", 2.0)],
                       columns=[c for c in eff.COLUMNS if c not in ("alpha", "seed")])
    old.to_csv(path, index=False)
    new = pd.DataFrame([("mono_s0", "mono", 1.0, 0.0, "d", "exact", "dim=8", "x", 3.0)], columns=eff.COLUMNS)
    table = eff.write_rows(new, path).set_index("model")
    assert list(pd.read_csv(path).columns) == eff.COLUMNS
    assert table.loc["hybrid_a0.25_s2", ["alpha", "seed"]].tolist() == [0.25, 2.0]
    assert table.loc["zero-shot", ["alpha", "seed"]].isna().all() and table.loc["mono_s0", "value"] == 3.0


def test_query_sample_keeps_every_language_of_an_item():
    queries = pd.DataFrame({"item_id": [str(i) for i in range(50)] * 3, "lang": np.repeat(list("abc"), 50)})
    rows = eff.query_sample(queries, 30, seed=1)
    picked = queries.iloc[rows]
    assert len(rows) == 30 and (picked.groupby("item_id").size() == 3).all()
    assert len(eff.query_sample(queries, 0)) == 150


def test_encoding_cost_and_e2e_latency_with_tiny_encoder(tiny_encoder, monkeypatch):
    monkeypatch.delenv("HBT_BF16", raising=False)
    texts = [" ".join(f"{c}{i % 10}" for i in range(j % 7 + 1)) for j, c in enumerate("abcdefgh" * 4)]
    rows = cost.encoding_cost(tiny_encoder, texts, max_length=16, batch_size=8, repeats=2,
                             precisions=["fp32", "bf16"])
    values = rows.pivot_table(index="param", columns="value_name", values="value")
    assert len(values) == 2 and (values["texts_per_s_p50"] > 0).all()
    n_tokens = sum(len(x) for x in tiny_encoder.tokenizer(["passage: " + t for t in texts], truncation=True,
                                                          max_length=16)["input_ids"])
    assert (values["n_tokens"] == n_tokens).all() and (values["n_texts"] == len(texts)).all()
    assert values["n_params"].nunique() == 1 and values["peak_rss_mib"].notna().all()
    assert values["cosine_vs_fp32"].dropna().iloc[0] > 0.98
    assert "HBT_BF16" not in os.environ  # the precision switch is undone
    index = faiss.IndexFlatIP(tiny_encoder.dim)
    index.add(tiny_encoder.encode(texts, "passage", max_length=16))
    e2e = cost.e2e_latencies({"tiny": (tiny_encoder, index)}, texts[:5], warmup=1)
    assert set(e2e["model"]) == {"tiny"}
    e2e = e2e.set_index("value_name")["value"]
    assert e2e["e2e_latency_ms_p50"] >= e2e["query_encode_ms_p50"] > 0


def test_tables_figures_and_conclusion_compare_strategies(clustered):
    """Two 'strategies' searched with the same specs give every table, figure and a computed conclusion."""
    import matplotlib
    matplotlib.use("Agg")
    queries, docs, qids, doc_ids, qrels = clustered
    specs = idx.default_specs(len(docs), DIM, ("exact", "ivf", "sq"), nprobes=(1, 8), sq=("SQ8",))
    rng = np.random.default_rng(3)
    parts = []
    for model, strategy, noise in (("mono_s0", "mono", 0.0), ("hybrid_a0.5_s0", "hybrid", 0.3)):
        d = unit(docs + noise * rng.standard_normal(docs.shape))
        sweep = eff.sweep(queries, d, qids, doc_ids, qrels, specs, n_latency=5, repeats=1, warmup=0, progress=False)
        enc = pd.DataFrame([("encoder", "precision=fp32,max_length=8,batch=8", n, v) for n, v in
                            [("texts_per_s_p5", 9.0), ("texts_per_s_p50", 10.0), ("texts_per_s_p95", 11.0),
                             ("peak_rss_mib", 50.0), ("n_params", 1e6)]], columns=sweep.columns)
        stats = clu.language_clustering(*language_pool(strategy == "mono"), nlist=30, sample=600)
        clus = pd.DataFrame([("clustering", "nlist=30", k, v) for k, v in stats.items()], columns=sweep.columns)
        alpha = 1.0 if strategy == "mono" else 0.5
        parts += [eff.tag_rows(pd.concat([enc, sweep]), model, strategy, "dureader_demo", alpha, 0),
                  eff.tag_rows(pd.concat([sweep, clus]), model, strategy, "xquad_r", alpha, 0)]
    rows = pd.concat(parts, ignore_index=True)
    knobs = report.knob_table(rows, "dureader_demo")
    assert list(knobs.columns) == ["mono", "hybrid"]
    assert [p for p in knobs.loc["ivf"].index] == [f"nlist={idx.ivf_nlist(600)},nprobe=1",
                                                    f"nlist={idx.ivf_nlist(600)},nprobe=8"]  # numeric order
    diffs = report.difference_table(rows, ["dureader_demo"])
    assert diffs.loc[0, "pair"] == "hybrid - mono" and diffs.loc[0, "points"] == 3
    assert report.clustering_table(rows).loc["mono", "silhouette"] > 0.5
    text = report.conclusion(rows, "dureader_demo")
    assert "hybrid - mono on dureader_demo" in text and f"{diffs.loc[0, 'mean diff']:+.3f}" in text
    assert "identical counts" in text and "Language clustering" in text
    for fig in (figures.figure_encoding(rows), figures.figure_clustering(rows),
                figures.figure_fronts(rows, [("dureader_demo", "latency_ms_p50", eff.OVERLAP)]),
                figures.figure_knobs(rows, ["dureader_demo", "xquad_r"])):
        assert fig.axes
        matplotlib.pyplot.close(fig)


def test_measure_all_writes_every_stage_for_every_model(tiny_encoder, tmp_path, monkeypatch):
    """The whole pipeline on a tiny two-language set with two tiny models: rows, facts, cache and CSV."""
    import types

    import lib.retrieval
    from lib.data import RetrievalSet
    from tiny_model import build_tiny_encoder

    monkeypatch.setattr(lib.retrieval, "results_dir", lambda profile: tmp_path)
    items = range(40)
    docs = pd.DataFrame([(f"{l}:{i}", l, f"{l}{i % 10} {l}{i // 10} {l}{(i * 7) % 10}") for l in "ab" for i in items],
                        columns=["doc_id", "lang", "text"])
    queries = pd.DataFrame([(f"{l}:q{i}", str(i), l, f"{l}{i % 10} {l}{i // 10}") for l in "ab" for i in items],
                           columns=["qid", "item_id", "lang", "text"])
    qrels = pd.DataFrame([(f"{l}:q{i}", f"{m}:{i}") for l in "ab" for m in "ab" for i in items],
                         columns=["qid", "doc_id"])
    rset = RetrievalSet(queries, docs, qrels, "toy")
    other = build_tiny_encoder(seed=1)
    specs = [types.SimpleNamespace(name=n, strategy=s, alpha=a, seed=seed, fingerprint=n, load=lambda e=e: e)
             for n, s, a, seed, e in (("zero-shot", "zero-shot", np.nan, np.nan, tiny_encoder),
                                      ("hybrid_s0", "hybrid", 0.5, 0, other))]
    workloads = [eff.Workload("toy", rset, query_max_length=16, doc_max_length=16),
                 eff.Workload("toy_pool", rset, metrics=family("pool"), families=("exact", "ivf"),
                              query_max_length=16, doc_max_length=16, max_queries=40, clustering=True)]
    out = tmp_path / "efficiency.csv"
    rows = eff.measure_all(specs, workloads, out, profile="t", cost_texts=docs["text"][:16].tolist(), threads=1,
                           repeats=1, n_latency=5, n_e2e=3, cost_batch_size=8)
    assert list(rows.columns) == eff.COLUMNS and set(rows["model"]) == {"zero-shot", "hybrid_s0"}
    who = rows.drop_duplicates("model").set_index("model")  # every row says the model's arm and seed
    assert who.loc["hybrid_s0", ["strategy", "alpha", "seed"]].tolist() == ["hybrid", 0.5, 0.0]
    assert rows.groupby("model")[["alpha", "seed"]].nunique(dropna=False).eq(1).all().all()
    for model in ("zero-shot", "hybrid_s0"):
        mine = rows[rows["model"] == model]
        assert {"encoder", "exact", "ivf", "hnsw", "sq", "facts"} <= set(mine.loc[mine["dataset"] == "toy", "index"])
        assert {"exact", "ivf", "clustering", "facts"} == set(mine.loc[mine["dataset"] == "toy_pool", "index"])
    facts = rows[(rows["index"] == "facts") & (rows["dataset"] == "toy_pool")].pivot_table(
        index="model", columns="value_name", values="value")
    assert (facts["n_queries"] == 40).all() and (facts["faiss_threads"] == 1).all()  # 20 items x 2 languages
    assert (tmp_path / "embeddings" / "hybrid_s0" / "toy" / "passage.npy").is_file()
    # every sweep point of every model carries its end-to-end latency, which includes encoding
    pts = report.points(rows, "toy")
    assert pts["end_to_end_ms_p50"].notna().all() and (pts["end_to_end_ms_p50"] > pts["latency_ms_p50"]).all()
    assert "End to end on toy" in report.conclusion(rows, "toy", "toy_pool")
    assert len(pd.read_csv(out)) == len(rows)
    eff.write_rows(rows[rows["model"] == "hybrid_s0"], out)  # upsert: same rows again
    assert len(pd.read_csv(out)) == len(rows)


def test_end_to_end_timing_needs_aligned_texts_and_every_encoder(clustered, tiny_encoder):
    q, d, qids, doc_ids = clustered[:4]
    spec = idx.default_specs(len(d), d.shape[1], ("exact",))
    with pytest.raises(ConfigError, match="missing \\['m'\\]"):
        eff.sweep_models({"m": (q, d)}, qids, doc_ids, None, spec, metrics=(), n_e2e=2, query_texts=["x"] * len(q))
    with pytest.raises(ConfigError, match="aligned"):
        eff.sweep_models({"m": (q, d)}, qids, doc_ids, None, spec, metrics=(), n_e2e=2,
                         encoders={"m": tiny_encoder}, query_texts=["x"])


# --------------------------------------------------------------------------
# Speeds on a fake clock, -1 ids


class FakeClock:
    """``perf_counter`` for lib.timing; the k-th ``encode`` call of the wrapped encoder takes k**2 / 10 s
    (uneven, so a mean and a median, or a best and a worst pass, differ)."""

    def __init__(self):
        self.now = 0.0
        self.calls = 0

    def perf_counter(self) -> float:
        return self.now

    def wrap(self, encoder):
        clock = self

        class Timed:
            def __getattr__(self, name):
                return getattr(encoder, name)

            def encode(self, texts, role, **kw):
                out = encoder.encode(texts, role, **kw)
                clock.calls += 1
                clock.now += 0.1 * clock.calls ** 2
                return out
        return Timed()


@pytest.fixture
def fake_clock(monkeypatch):
    import time
    import types

    from lib import timing

    clock = FakeClock()
    fake = types.ModuleType("time")
    fake.__dict__.update(time.__dict__)
    fake.perf_counter = clock.perf_counter
    monkeypatch.setattr(timing, "time", fake)
    return clock


def test_encoding_cost_speeds_on_a_fake_clock(tiny_encoder, fake_clock):
    """Passes take 0.4, 0.9, 1.6 s (fp32; call 1 is the warm-up) and 3.6, 4.9, 6.4 s (bf16)."""
    texts = [" ".join(f"{c}{i % 10}" for i in range(j % 5 + 1)) for j, c in enumerate("abcdef" * 3)]
    rows = cost.encoding_cost(fake_clock.wrap(tiny_encoder), texts, max_length=16, batch_size=4, repeats=3,
                             precisions=["fp32", "bf16"])
    values = rows.pivot_table(index="param", columns="value_name", values="value")
    n_tokens = sum(len(x) for x in tiny_encoder.tokenizer(["passage: " + t for t in texts], truncation=True,
                                                          max_length=16)["input_ids"])
    for mode, times in (("fp32", [0.4, 0.9, 1.6]), ("bf16", [3.6, 4.9, 6.4])):
        v = values.loc[f"precision={mode},max_length=16,batch=4"]
        speeds = len(texts) / np.array(times)
        for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
            assert v[f"texts_per_s_{name}"] == pytest.approx(np.percentile(speeds, q), rel=1e-9), (mode, name)
        assert v["tokens_per_s"] == pytest.approx(n_tokens / np.median(times), rel=1e-9)
    assert fake_clock.calls == 8


def test_overlap_at_k_with_missing_results():
    """faiss pads with -1 when it finds fewer than k neighbours: a miss, never a match with another -1."""
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [7, 8, 9, 10], [-1, -1, -1, -1]])
    approx = np.array([[2, 1, -1, -1], [6, -1, -1, -1], [-1, -1, -1, -1], [-1, -1, -1, -1]])
    got = idx.overlap_at_k(approx, exact, k=4)
    np.testing.assert_allclose(got[:3], [2 / 4, 1 / 2, 0.0])
    assert np.isnan(got[3])  # no exact neighbour at all: undefined, not 0 or 1
    np.testing.assert_allclose(idx.overlap_at_k(exact[:3], exact[:3], k=4), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(idx.overlap_at_k(approx[:2], exact[:2], k=2), [1.0, 1 / 2])


def test_labelled_metrics_with_missing_results():
    """-1 ids (fewer than k results) score as absent results, checked against hand-computed values."""
    doc_ids = [f"d{i}" for i in range(6)]
    qids = ["q0", "q1", "q2", "q3"]
    qrels = pd.DataFrame({"qid": ["q0", "q1", "q1", "q2"], "doc_id": ["d2", "d0", "d5", "d4"]})
    ids = np.array([[1, 2, -1], [0, -1, -1], [-1, -1, -1], [3, -1, -1]])
    scores = np.array([[0.9, 0.8, -3.4e38], [0.7, -3.4e38, -3.4e38], [-3.4e38] * 3, [0.5, -3.4e38, -3.4e38]])
    got = idx.labelled_metrics(ids, scores, qids, doc_ids, qrels, ("mrr_at_10", "recall_at_1", "recall_at_50",
                                                                   "ndcg_at_10"))
    # q0: relevant d2 at rank 2; q1: d0 at rank 1, d5 never found; q2: nothing found; q3 has no judgement
    assert got["mrr_at_10"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert got["recall_at_1"] == pytest.approx((0 + 1 / 2 + 0) / 3)
    assert got["recall_at_50"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    ndcg = [1 / np.log2(3), 1 / (1 + 1 / np.log2(3)), 0.0]
    assert got["ndcg_at_10"] == pytest.approx(np.mean(ndcg))
    # a -1 id must not be read as the last document (Python's ids[-1]): d5 is relevant to q1
    assert got["recall_at_50"] < (1 + 1 + 0) / 3
