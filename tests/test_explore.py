"""lib.explore on tiny data: model discovery, reuse of the evaluation cache, top-k and rank views."""
from __future__ import annotations

import json
import math
import shutil
import types

import numpy as np
import pytest

from conftest import redirect_results
from lib import evaluation as E
from lib import explore as X
from lib import explore_widget
from lib import models
from lib.errors import ConfigError, ModelError
from test_evaluation import tiny_set as evaluation_tiny_set
from tiny_model import build_tiny_encoder

LANGS = ("a", "b", "c")  # fake languages: language x writes words x0..x9


def tiny_set(n_items: int = 4, distractors: int = 1):
    """test_evaluation's tiny set with every item in every language (no missing version)."""
    return evaluation_tiny_set(n_items=n_items, missing=(), distractors=distractors)


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """results/unit/ in a temporary folder: a tiny 'backbone' folder and runs trained from it."""
    redirect_results(monkeypatch, tmp_path)
    base = tmp_path / "base"
    build_tiny_encoder(seed=0).save(base)
    runs = tmp_path / "unit" / "models"
    for i, (name, layers) in enumerate([("mono_s0", 0), ("cross_s0", 0), ("hybrid_a0.5_s0", 0),
                                        ("hybrid_a0.5_s1", 0), ("hybrid_a0.2_s0", 0), ("mono_s0_L1", 1)]):
        build_tiny_encoder(seed=i + 1).save(runs / name / "model")
        strategy, seed = name.split("_")[0], int(name.split("_s")[1][0])
        alpha = float(name.split("_a")[1].split("_")[0]) if "_a" in name else 0.5
        (runs / name / "train_config.json").write_text(json.dumps(
            {"backbone": str(base), "num_layers": layers, "strategy": strategy, "alpha": alpha, "seed": seed}))
    return types.SimpleNamespace(name="unit", base=str(base), root=tmp_path)


def test_model_table_finds_the_runs_of_this_backbone_and_depth(profile):
    table = X.model_table("unit", profile.base)
    zero = models.zero_shot_name(profile.base)
    assert table["model"].tolist() == [zero, "mono_s0", "cross_s0", "hybrid_a0.2_s0", "hybrid_a0.5_s0",
                                       "hybrid_a0.5_s1"]  # mono_s0_L1 has another depth
    assert table.loc[table["default"], "model"].tolist() == [zero, "mono_s0", "cross_s0", "hybrid_a0.5_s0"]
    specs = X.select_models("unit", profile.base, models="zero-shot, hybrid_a0.5_s1")
    assert [s.name for s in specs] == [zero, "hybrid_a0.5_s1"]
    assert [s.strategy for s in specs] == ["zero-shot", "hybrid"]
    with pytest.raises(ConfigError, match="parameter models: \\['cross_s9'\\] not found"):
        X.select_models("unit", profile.base, models="cross_s9")


def test_runs_whose_weights_are_elsewhere_are_listed_but_not_chosen_by_default(profile):
    """A run trained on another machine (record and results here, weights not) cannot encode a typed
    question: the table says so, the default selection passes it over, naming it fails clearly."""
    folder = next(p for p in models.trained_models("unit") if p.name == "hybrid_a0.5_s0")
    models.write_record(folder)
    shutil.rmtree(folder / "model")
    table = X.model_table("unit", profile.base).set_index("model")
    assert not table.loc["hybrid_a0.5_s0", "weights"] and table.loc["mono_s0", "weights"]
    assert table.index[table["default"]].tolist()[-1] == "hybrid_a0.2_s0"  # the seed-0 hybrid that is here
    spec, = X.select_models("unit", profile.base, models="hybrid_a0.5_s0")
    with pytest.raises(ModelError, match="not on this machine"):
        spec.load()


def test_explorer_reuses_the_evaluation_cache_without_loading_models(profile):
    data = tiny_set()
    ex = X.open_explorer("unit", "mlqa_r", backbone=profile.base, data=data)
    for spec in ex.models:  # what notebook 04 does
        E.evaluate_model(spec, dataset="mlqa_r", profile="unit", data=data, progress=False)
        spec.load = lambda: (_ for _ in ()).throw(AssertionError("model loaded although cached"))
    table = X.question_table(ex)
    ranks = X.question_ranks(ex, "a-q0")
    hits = X.search(ex, "what a0 a1 ?", k=3)  # a dataset question's text: cached embedding
    assert not ex._loaders  # no model was loaded
    # the rank distances equal the ones the evaluation wrote
    for name in ex.names:
        pq = E.load_per_query("unit", name, "mlqa_r")
        multi = pq[pq["setting"] == "multi"].set_index("query_id")["rank_distance"]
        assert np.allclose(table.set_index("qid")[name], multi[table["qid"]].to_numpy())
        got = sorted(ranks.loc[ranks["model"] == name, "rank"])
        assert got == pq.loc[(pq["query_id"] == "a-q0") & (pq["setting"] == "multi"), "relevant_ranks"].iloc[0].tolist()
    assert set(hits["model"]) == set(ex.names) and hits["relevant"].notna().all()


def _handmade(ex):
    """Candidates = item vector + a language offset, questions = item vector + a smaller one of
    their language: every model ranks the item's 3 versions first, its own language on top."""
    lay = ex.lay
    item_vec = np.eye(8, dtype=np.float32)[:4]
    lang_vec = {lang: np.eye(8, dtype=np.float32)[4 + i] for i, lang in enumerate(LANGS)}
    is_answer = ~lay.docs["doc_id"].str.contains("x")
    item_of_doc = lay.docs["doc_id"].str.extract(r"d(\d)")[0].astype(int).to_numpy()
    docs = np.where(is_answer.to_numpy()[:, None], item_vec[item_of_doc], 0.1 * item_vec[item_of_doc])
    docs = docs + 0.3 * np.stack([lang_vec[x] for x in lay.docs["lang"]])
    qs = item_vec[lay.queries["item_id"].str[-1].astype(int)] + 0.2 * np.stack(
        [lang_vec[x] for x in lay.queries["lang"]])
    for name in ex.names:
        ex._emb[name, "passage"], ex._emb[name, "query"] = docs.astype(np.float32), qs.astype(np.float32)


def test_known_answer_ranks_and_top_k(profile):
    ex = X.open_explorer("unit", "xquad_r", backbone=profile.base, models="zero-shot,mono_s0", data=tiny_set())
    _handmade(ex)
    ranks = X.question_ranks(ex, "b-q2")
    zero = ex.names[0]
    part = ranks[ranks["model"] == zero]
    assert part["rank"].tolist() == [1, 2, 3] and part["lang"].iloc[0] == "b" and part["same_lang"].iloc[0]
    summary = X.rank_summary(ranks)
    assert summary.index.tolist() == ["b", "a", "c", "rank distance", "AP"]
    assert summary.loc["rank distance", zero] == 2 and summary.loc["AP", zero] == 1.0
    # only candidates in c: one relevant candidate, first; no rank distance
    only_c = X.question_ranks(ex, "b-q2", doc_langs="c")
    assert only_c["rank"].tolist() == [1, 1] and (only_c["lang"] == "c").all()
    table = X.question_table(ex, query_langs=["a"], doc_langs=["b", "c"])
    assert (table["lang"] == "a").all() and len(table) == 4
    assert (table[zero] == 1).all() and (table["n_relevant"] == 2).all()
    # top-k for a dataset question: the relevant ones on top, marked
    hits = X.search(ex, "b-q2", k=4)
    top = hits[hits["model"] == zero]
    assert top["relevant"].tolist() == [True, True, True, False]
    assert top["lang"].iloc[0] == "b" and sorted(top["lang"].iloc[:3]) == ["a", "b", "c"]  # a, c tie
    assert (top["answers_item"].iloc[:3] == "item2").all() and top["answers_item"].iloc[3] == ""
    assert top["score"].is_monotonic_decreasing
    wide = X.side_by_side(hits)
    assert list(wide.columns) == ex.names and len(wide) == 4
    assert wide.loc[1, zero].startswith("[b] \u2713") and "\u2717" in wide.loc[4, zero]
    hits_b = X.search(ex, "b-q2", k=10, doc_langs=["a"])
    assert (hits_b["lang"] == "a").all() and len(hits_b) == 8 * len(ex.names)  # k beyond the 8 candidates in a
    fig = explore_widget.plot_question_ranks(ranks)
    assert len(fig.axes) == 1
    with pytest.raises(ConfigError, match="parameter doc_langs"):
        X.search(ex, "b-q2", doc_langs=["zz"])
    with pytest.raises(ConfigError, match="parameter question_id"):
        X.question_ranks(ex, "nope")


def test_typed_question_in_any_language_loads_and_encodes(profile):
    ex = X.open_explorer("unit", "mlqa_r", backbone=profile.base, models="mono_s0", data=tiny_set())
    hits = X.search(ex, "Wie viele a3 b4 ?", k=5)
    assert list(ex._loaders) == ["mono_s0"]  # the model was loaded to encode the typed question
    assert hits["relevant"].isna().all() and len(hits) == 5
    enc = ex.encoder("mono_s0")
    q = enc.encode(["Wie viele a3 b4 ?"], "query", max_length=128, progress=False)[0]
    pool = ex.embeddings("mono_s0", "passage")
    expected = np.sort(pool @ q)[::-1][:5]
    assert np.allclose(hits["score"], expected, atol=1e-5)
    assert X.search(ex, "  WHAT a3 a4 ?", k=2)["relevant"].notna().all()  # exact text of a question


def test_widget_runs_its_callbacks(profile):
    pytest.importorskip("ipywidgets")
    ex = X.open_explorer("unit", "xquad_r", backbone=profile.base, models="zero-shot,mono_s0", data=tiny_set())
    _handmade(ex)
    panel = explore_widget.widget(ex, backbone=profile.base, question="b-q2")
    c = panel.controls
    assert c["question_lang"].value == "a" and c["question_id"].options  # questions listed, one picked
    first = c["question_id"].value
    assert panel.last["question"].loc["rank distance", ex.names[0]] == 2
    assert panel.last["ask"].loc[1, ex.names[0]].startswith("[b] \u2713")
    c["question_lang"].value = "c"
    assert all(v.startswith("c-") for _, v in c["question_id"].options) and c["question_id"].value != first
    c["question"].value = "what a1 a2 ?"
    assert panel.last["ask"].loc[1, ex.names[0]].startswith("[a] \u2713")
    c["k"].value = 2
    c["search"].click()
    assert len(panel.last["ask"]) == 2
    assert math.isfinite(len(c["models"].options)) and "mono_s0" in c["models"].value
