"""Results that outlive the weights: a later session on another machine resumes from the results folder
in git (run records, rank files, manifests) without retraining or re-evaluating (lib.models,
lib.evaluation, lib.checkpoints)."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import redirect_results
from lib import checkpoints as CK
from lib import evaluation as E
from lib import models
from lib.errors import ConfigError, DataError, ModelError
from test_checkpoints import make_run
from test_evaluation import tiny_set


@pytest.fixture
def results(tmp_path, monkeypatch):
    return redirect_results(monkeypatch, tmp_path, CK)


@pytest.fixture
def data(monkeypatch):
    """The tiny set stands in for the data folder wherever the evaluation loads XQuAD-R."""
    tiny = tiny_set(n_items=4, missing=(), distractors=1)
    monkeypatch.setattr(E, "load_lareqa", lambda name, max_items=0: tiny)
    monkeypatch.setattr(CK, "load_lareqa", lambda name, max_items=0: tiny)
    return tiny


def test_the_rank_file_rebuilds_the_per_query_file_exactly(results, data, tiny_encoder, monkeypatch):
    E.evaluate_model(tiny_encoder, "tiny", "xquad_r", "p", data=data)
    before = E.load_per_query("p", "tiny", "xquad_r")
    E.per_query_path("p", "tiny", "xquad_r").unlink()  # the machine-local cache is gone
    assert E.has_evaluation_files("p", "tiny", "xquad_r")
    pd.testing.assert_frame_equal(E.load_per_query("p", "tiny", "xquad_r"), before)
    assert E.per_query_path("p", "tiny", "xquad_r").is_file()  # rebuilt once, then read
    with np.load(E.ranks_path("p", "tiny", "xquad_r")) as f:
        assert f["pool"].dtype == np.uint16 and len(f["pool"]) == sum(len(r) for r in E.layout(data).relevant)

    # the data changed since: a clear error naming the file, not silently different ranks
    E.per_query_path("p", "tiny", "xquad_r").unlink()
    monkeypatch.setattr(E, "load_lareqa", lambda name, max_items=0: tiny_set(n_items=5, missing=()))
    with pytest.raises(DataError, match=r"tiny__xquad_r.npz was computed on other xquad_r data"):
        E.load_per_query("p", "tiny", "xquad_r")


def test_a_run_without_its_weights_keeps_its_identity_results_and_last_step(results, data):
    runs = [make_run(results / "p", "mono_s0", (0, 1)), make_run(results / "p", "cross_s0", None, strategy="cross")]
    for run in runs:
        models.write_record(run)
    specs = {(r.name, c): models.describe_model(str(r), checkpoint=c) for r in runs for c in ("model", "last")}
    metrics = E.evaluate_all("p", datasets=["xquad_r"], zero_shot=False)
    last = CK.evaluate_last("p", runs, ["xquad_r"])
    # a fresh machine: the results folder from git holds records, logs, rank files and manifests only
    for run in runs:
        for folder in ("model", "last"):
            shutil.rmtree(run / folder)
    for namespace in ("p", "p/checkpoint_last"):
        shutil.rmtree(E.per_query_path(namespace, "x", "xquad_r").parent)

    assert models.trained_models("p") == sorted(runs)
    for (name, checkpoint), spec in specs.items():
        again = models.describe_model(str(results / "p" / "models" / name), checkpoint=checkpoint)
        assert (again.name, again.fingerprint, again.layers, again.seed) == (spec.name, spec.fingerprint,
                                                                              spec.layers, spec.seed)
        with pytest.raises(ModelError, match=r"weights of .* are not on this machine.*--only 03"):
            again.load()
    assert not models.last_is_kept(runs[0]) and models.last_is_kept(runs[1])
    # nothing to evaluate again: the same rows, no weights needed
    pd.testing.assert_frame_equal(E.evaluate_all("p", datasets=["xquad_r"], zero_shot=False), metrics)
    pd.testing.assert_frame_equal(CK.evaluate_last("p", runs, ["xquad_r"]), last)
    assert len(E.load_per_query("p/checkpoint_last", "cross_s0", "xquad_r")) > 0  # copied one, rebuilt here


def test_a_run_without_weights_or_record_did_not_finish(results):
    run = make_run(results / "p", "mono_s0", (0, 1))
    shutil.rmtree(run / "model")
    assert models.trained_models("p") == []
    with pytest.raises(ModelError, match=r"neither model/ \(weights\) nor record.json: the run did not finish"):
        models.describe_model(str(run))


def test_the_validation_signal_is_kept_with_the_run(results, monkeypatch):
    run = make_run(results / "p", "mono_s0", (0, 1), val_losses=(2.0, 1.0, 1.01))  # flat: the rule asks
    models.write_record(run)
    pool = CK.ValidationPool(queries=["a1 a2", "b1 b2"], passages=["a1 a2 .", "b1 b2 .", "c3 c4 ."],
                             relevant=[[0], [1]])
    monkeypatch.setattr(CK, "validation_pool", lambda *a: pool)
    first = CK.retrieval_rule([run])
    for folder in ("model", "last"):
        shutil.rmtree(run / folder)
    pd.testing.assert_frame_equal(CK.retrieval_rule([run]), first)


def test_a_run_evaluated_right_after_training_leaves_nothing_to_notebook_04(results, data, monkeypatch):
    run = make_run(results / "p", "mono_s0", (0, 1), val_losses=(2.0, 1.0, 1.01))  # flat, last differs
    pool = CK.ValidationPool(queries=["a1 a2"], passages=["a1 a2 .", "b1 b2 ."], relevant=[[0]])
    monkeypatch.setattr(CK, "validation_pool", lambda *a: pool)
    table = CK.evaluate_run("p", run, ["xquad_r"])
    assert set(table["setting"]) == {"mono", "cross", "multi"} and table[["kept", "last"]].notna().all().all()
    assert (run / CK.VALIDATION_FILE).is_file()
    called = []
    monkeypatch.setattr(E, "evaluate_model", lambda *a, **k: called.append(a))
    monkeypatch.setattr(CK, "evaluate_model", lambda *a, **k: called.append(a))
    E.evaluate_all("p", datasets=["xquad_r"], zero_shot=False)
    CK.evaluate_last("p", [run], ["xquad_r"])
    assert called == []


def test_evaluate_on_names_lareqa_datasets():
    from lib import config

    run = next(r for r in config.plan_runs(config.load_profile("default")) if r.notebook.stem.startswith("03"))
    run.parameters["evaluate_on"] = "xquad_r,mlqa_retrieval"
    declared = config.notebook_parameters(run.notebook)
    with pytest.raises(ConfigError, match=r"'evaluate_on' is 'xquad_r,mlqa_retrieval'; give a comma-separated list"):
        config.validate_values(run, declared, "here")


def test_the_untuned_backbone_knows_its_depth_without_loading(embedded_encoder):
    """A zero-shot evaluation written from cached embeddings (nothing loaded) still records the depth that
    notebook 04 selects its rows by."""
    assert models.describe_model("embedded").layers == embedded_encoder.model.config.num_hidden_layers
