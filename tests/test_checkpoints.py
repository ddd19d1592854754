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
