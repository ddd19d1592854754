"""Checkpoint choice (lib/checkpoints.py, models.describe_model(checkpoint=...)) on tiny run folders."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import redirect_results
from lib import checkpoints as CK
from lib import evaluation as E
from lib import models
from lib.errors import ConfigError
from test_evaluation import tiny_set
from tiny_model import build_tiny_encoder


@pytest.fixture
def results(tmp_path, monkeypatch):
    return redirect_results(monkeypatch, tmp_path, CK)


def make_run(root, name: str, seeds: tuple[int, int] | None, val_losses=(2.0, 1.0, 1.01), strategy="mono"):
    """A finished run folder: model/ from tiny seed seeds[0], last/ from seeds[1] (a same_as pointer when
    ``seeds`` is None), a train_config.json and a train_log.csv with the given validation losses."""
    run = root / "models" / name
    build_tiny_encoder(seed=0).save(run / "model")
    if seeds is None:
        (run / "last").mkdir(parents=True)
        (run / "last" / "same_as.json").write_text(json.dumps({"same_as": "model"}))
    else:
        build_tiny_encoder(seed=seeds[1]).save(run / "last")
    steps = 10 * (len(val_losses) - 1)
    best = int(np.argmin(val_losses))
    cfg = {"strategy": strategy, "alpha": 1.0 if strategy == "mono" else 0.5, "seed": 0, "steps": steps,
           "best_step": 10 * best, "best_val_loss": float(min(val_losses))}
    (run / "train_config.json").write_text(json.dumps(cfg))
    pd.DataFrame({"step": [10 * i for i in range(len(val_losses))], "loss": np.nan,
                  "val_loss": list(val_losses)}).to_csv(run / "train_log.csv", index=False)
    return run


def test_last_checkpoint_is_its_own_model_unless_it_is_the_kept_one(tmp_path):
    run = make_run(tmp_path, "mono_s0", seeds=(0, 1))
    kept, last = models.describe_model(str(run)), models.describe_model(str(run), checkpoint="last")
    assert (kept.name, last.name) == ("mono_s0", "mono_s0__last")
    assert last.strategy == "mono" and last.seed == 0 and kept.fingerprint != last.fingerprint
    text = ["a1 a2 a3"]
    want = build_tiny_encoder(seed=1).encode(text, "query")
    np.testing.assert_allclose(last.load().encode(text, "query"), want, atol=1e-6)
    same = make_run(tmp_path, "cross_s0", seeds=None, strategy="cross")
    assert models.describe_model(str(same), checkpoint="last").fingerprint == models.describe_model(str(same)).fingerprint
    assert models.describe_model(str(same), checkpoint="last").name == "cross_s0"
    with pytest.raises(ConfigError, match="checkpoint"):
        models.describe_model(str(run), checkpoint="best")


def test_run_table_measures_how_flat_the_validation_curve_is(tmp_path):
    runs = [make_run(tmp_path, "mono_s0", (0, 1), val_losses=(2.0, 1.0, 1.01)),
            make_run(tmp_path, "hybrid_a0.5_s0", (0, 2), val_losses=(2.0, 1.0, 1.5), strategy="hybrid")]
    table = CK.run_table(runs).set_index("model")
    assert table.loc["mono_s0", "best_step"] == 10 and table.loc["mono_s0", "val_loss_rise"] == pytest.approx(0.01)
    assert table.loc["mono_s0", "flat"] and not table.loc["hybrid_a0.5_s0", "flat"]
    assert not table["last_is_kept"].any()
    assert table["train_seconds"].isna().all() and (table["cpu_model"] == "").all()  # not recorded by these runs
    cfg = json.loads((runs[0] / "train_config.json").read_text())
    (runs[0] / "train_config.json").write_text(json.dumps({**cfg, "train_seconds": 250.5, "cpu_model": "AMD EPYC",
                                                            "precision": "bf16"}))
    row = CK.run_table(runs).set_index("model").loc["mono_s0"]
    assert (row["train_seconds"], row["cpu_model"], row["precision"]) == (250.5, "AMD EPYC", "bf16")


def test_last_steps_are_evaluated_apart_and_kept_ones_copied(results, monkeypatch):
    data = tiny_set(n_items=4, missing=(), distractors=1)
    monkeypatch.setattr(CK, "load_lareqa", lambda name, max_items=0: data)
    differ = make_run(results / "p", "mono_s0", (0, 1))
    same = make_run(results / "p", "cross_s0", None, strategy="cross")
    for run in (differ, same):
        E.evaluate_model(str(run), dataset="xquad_r", profile="p", data=data)
    metrics = CK.evaluate_last("p", [differ, same], ["xquad_r"])
    assert sorted(metrics["model"].unique()) == ["cross_s0", "mono_s0"]
    assert set(metrics["profile"]) == {"p/checkpoint_last"}
    kept = E.load_metrics("p")
    pick = lambda frame, m: frame[(frame["model"] == m) & (frame["metric"] == "map")]["value"].to_numpy()  # noqa
    np.testing.assert_allclose(pick(metrics, "cross_s0"), pick(kept, "cross_s0"))  # copied: same weights
    assert not np.allclose(pick(metrics, "mono_s0"), pick(kept, "mono_s0"))  # another model was evaluated
    assert (results / "p" / "checkpoint_last" / "per_query" / "cross_s0__xquad_r.parquet").is_file()
    assert not (results / "p" / "per_query" / "mono_s0__last__xquad_r.parquet").exists()  # nothing leaks back


def test_pool_map_by_hand():
    """Ranks in the pooled scores, every relevant passage counted, ties against the relevant passage."""
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1]])  # passages 0 and 2 tie for question 0
    # question 0: relevant {1}: scores .9, .2, .9 -> rank 3 -> AP 1/3; question 1: relevant {0, 1}: passage 1
    # first (.8), passage 0 tied with passage 2 (.1), the non-relevant one first -> ranks 1, 3 -> (1 + 2/3) / 2
    assert CK.pool_map(q, p, [[1], [0, 1]]) == pytest.approx((1 / 3 + (1 + 2 / 3) / 2) / 2)


def test_validation_pool_is_the_loss_pairs_with_every_item_passage_relevant(monkeypatch):
    from test_sampling import make_pairs

    pairs = make_pairs(n_val=3)
    monkeypatch.setattr(CK.training_data, "load_training_pairs", lambda max_items=0, **k: pairs)
    pool = CK.validation_pool(0, batch_size=4, val_pairs=0)
    val = pairs[pairs["split"] == "val"]
    assert sorted(pool.queries) == sorted(val["query"]) and sorted(pool.passages) == sorted(set(val["passage"]))
    for query, rel in zip(pool.queries, pool.relevant):
        item = val.loc[val["query"] == query, "item_id"].iloc[0]
        assert {pool.passages[i] for i in rel} == set(val.loc[val["item_id"] == item, "passage"])


def test_retrieval_rule_encodes_only_flat_runs_and_verdicts_use_the_chosen_files(results, monkeypatch):
    from test_sampling import make_pairs

    monkeypatch.setattr(CK.training_data, "load_training_pairs", lambda max_items=0, **k: make_pairs(n_val=3))
    flat = make_run(results / "p", "mono_s0", (0, 1), val_losses=(2.0, 1.0, 1.01))
    sloped = make_run(results / "p", "hybrid_a0.5_s0", (0, 2), val_losses=(2.0, 1.0, 1.5), strategy="hybrid")
    kept_same = make_run(results / "p", "cross_s0", None, val_losses=(2.0, 1.5, 1.0), strategy="cross")
    runs = [flat, sloped, kept_same]
    table = CK.run_table(runs).set_index("model")
    assert table["flat"].tolist() == [True, False, False]  # the last step kept: nothing to choose
    rule = CK.retrieval_rule(runs).set_index("model")
    assert rule.loc["mono_s0", "val_map_kept"] > 0 and rule.loc["mono_s0", "val_map_last"] > 0
    assert rule.loc[["hybrid_a0.5_s0", "cross_s0"], "val_map_kept"].isna().all()
    assert (rule.loc[["hybrid_a0.5_s0", "cross_s0"], "chosen"] == "kept").all()
    expected = "last" if rule.loc["mono_s0", "val_map_last"] > rule.loc["mono_s0", "val_map_kept"] else "kept"
    assert rule.loc["mono_s0", "chosen"] == expected

    assert CK.verdicts_under_retrieval("p", rule.reset_index().assign(chosen="kept"), ["xquad_r"]) is None
    data = tiny_set(n_items=4, missing=(), distractors=1)
    monkeypatch.setattr(CK, "load_lareqa", lambda name, max_items=0: data)
    for run in runs:
        E.evaluate_model(str(run), dataset="xquad_r", profile="p", data=data)
    CK.evaluate_last("p", runs, ["xquad_r"])
    seen = {}
    monkeypatch.setattr(CK.paper, "check_claims", lambda target, metrics, datasets, **kw: seen.update(
        target=target, metrics=metrics) or ("verdicts", "comparisons"))
    chosen = rule.reset_index().assign(chosen=["last", "kept", "kept"])
    assert CK.verdicts_under_retrieval("p", chosen, ["xquad_r"]) == ("verdicts", "comparisons")
    assert seen["target"] == "p/checkpoint_retrieval"
    pick = lambda frame, m: frame[(frame["model"] == m) & (frame["metric"] == "map")]["value"].to_numpy()  # noqa
    np.testing.assert_allclose(pick(seen["metrics"], "mono_s0"), pick(E.load_metrics("p/checkpoint_last"), "mono_s0"))
    np.testing.assert_allclose(pick(seen["metrics"], "hybrid_a0.5_s0"), pick(E.load_metrics("p"), "hybrid_a0.5_s0"))
