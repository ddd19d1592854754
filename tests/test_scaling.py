"""The size axis: parsing, layer bounds, model plan (truncated and distilled, seeds), parameter counts, hub
errors, reuse. Intervals: tests/test_scaling_stats.py."""
from __future__ import annotations

import json
import socket
import warnings

import numpy as np
import pandas as pd
import pytest

from lib import models
from lib import scaling as S
from lib import strategies
from lib.errors import ConfigError, ModelError


def test_parse_sizes_and_lists():
    assert S.parse_sizes("3,6,12") == (3, 6, 12)
    assert S.parse_sizes(" 6, 3 ") == (3, 6)
    for bad in ("", "3,x", "0,3", "3,3"):
        with pytest.raises(ConfigError):
            S.parse_sizes(bad)
    assert S.parse_list("mono, hybrid", "strategies", strategies.trained_names()) == ("mono", "hybrid")
    with pytest.raises(ConfigError, match="hybird"):
        S.parse_list("mono,hybird", "strategies", strategies.trained_names())


def test_layer_counts_outside_1_to_depth_are_config_errors():
    S.check_sizes([1, 6, 12], 12)
    for sizes in ([0, 3], [3, 13]):
        with pytest.raises(ConfigError, match=r"1\.\.12"):
            S.check_sizes(sizes, 12, "embedded")
    with pytest.raises(ConfigError):
        S.plan_models("t", "embedded", sizes=(1, 3), depth=2)


def test_plan_maps_the_full_depth_to_untruncated_runs():
    plan = S.plan_models("t", "embedded", sizes=(1, 2), strategies=("mono", "hybrid"), alpha=0.5, seeds=(0,), depth=2)
    names = [m.name for m in plan]
    assert names == ["zero-shot_L1", "mono_s0_L1", "hybrid_a0.5_s0_L1", "zero-shot", "mono_s0", "hybrid_a0.5_s0"]
    full = [m for m in plan if m.layers == 2]
    assert all(m.num_layers == 0 for m in full)  # notebook 03's runs (no _L suffix) are the 2-layer points
    assert [m.num_layers for m in plan if m.layers == 1] == [1, 1, 1]
    trained = [m for m in plan if m.trained]
    assert all(m.run_dir.name == m.name and m.run_dir.parent.name == "models" for m in trained)
    assert {m.alpha for m in trained if m.strategy == "mono"} == {1.0}


def test_non_embedding_parameters_of_the_tiny_bert(tiny_encoder):
    counts = S.count_parameters(tiny_encoder.model)
    cfg = tiny_encoder.model.config
    h, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    embedding = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * h
    per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h  # attention, FFN, two LayerNorms
    assert counts["embedding_params"] == embedding
    assert counts["non_embedding_params"] == n * per_layer + 2 * h  # + the embeddings' LayerNorm
    assert counts["total_params"] == sum(p.numel() for p in tiny_encoder.model.parameters())


def test_encode_speed_is_the_best_pass_and_restores_threads(tiny_encoder, monkeypatch):
    """On a fake clock (the k-th encode call takes k**2 / 10 s): a warm-up batch, then passes of 0.4, 0.9
    and 1.6 s; the speed is the texts over the best pass, with torch's thread count restored."""
    import time
    import types

    import torch

    from lib import timing
    from test_efficiency import FakeClock

    clock = FakeClock()
    fake = types.ModuleType("time")
    fake.__dict__.update(time.__dict__)
    fake.perf_counter = clock.perf_counter
    monkeypatch.setattr(timing, "time", fake)
    seen_threads = []
    timed = clock.wrap(tiny_encoder)
    original = timed.encode
    timed.encode = lambda *a, **k: (seen_threads.append(torch.get_num_threads()), original(*a, **k))[1]
    before = torch.get_num_threads()
    texts = ["a1 a2 a3"] * 20
    speed = S.encode_speed(timed, texts, batch_size=8, max_length=16, threads=1, repeats=3)
    assert clock.calls == 4 and seen_threads == [1] * 4
    assert speed == pytest.approx(len(texts) / 0.4, rel=1e-9)
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError):
        S.encode_speed(tiny_encoder, [], threads=1)


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode, and any socket connection fails loudly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the test touched the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_unreachable_hub_backbone_blames_the_network_not_the_id(no_network):
    with pytest.raises(ModelError) as info:
        S.check_hub_backbone("hbt-test-owner/no-such-encoder-42")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "network" in message and "could not be checked" in message
    with pytest.raises(ModelError, match="network"):
        S.backbone_depth("hbt-test-owner/no-such-encoder-42")


def test_malformed_hub_id_blames_the_id(no_network):
    for bad in ("intfloat//e5", "owner/name/extra", "-bad/x", "a b/c"):
        with pytest.raises(ConfigError, match="the id is the problem"):
            S.check_hub_backbone(bad)


def test_finished_runs_are_reused_with_a_warning_when_settings_differ(tmp_path):
    plan = S.plan_models("t", "embedded", sizes=(2,), strategies=("cross",), depth=2)
    model = plan[1]
    run_dir = tmp_path / model.name
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "train_config.json").write_text(json.dumps({"strategy": "cross", "steps": 6, "batch_size": 8,
                                                           "lr": 3e-5, "temperature": 0.01, "warmup_steps": 2,
                                                           "train_seconds": 12.5, "cpu_model": "AMD EPYC",
                                                           "precision": "bf16"}))
    model = S.SizedModel(model.name, model.strategy, model.layers, model.num_layers, model.backbone,
                         model.alpha, model.seed, run_dir)
    with pytest.warns(UserWarning, match="other settings"):
        rows = S.train_models([plan[0], model], steps=4, batch_size=8, warmup_steps=2)
    assert rows.to_dict("records") == [{"model": model.name, "train_seconds": 12.5, "steps": 6, "reused": True,
                                        "train_cpu": "AMD EPYC", "train_precision": "bf16"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seen = []
        S.train_models([plan[0], model], steps=6, batch_size=8, warmup_steps=2,
                       after=seen.append)  # same settings: no warning
    assert seen == [model]  # each trained model handed on as soon as it is there (untuned ones are not trained)


def test_a_stale_scaling_file_stops_before_any_training(tmp_path, monkeypatch):
    """scaling.csv is written at the end of notebook 07: one from another version fails first, not after hours."""
    monkeypatch.setattr(S, "results_dir", lambda profile: tmp_path / profile)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "scaling.csv").write_text("model,strategy,layers\nm,mono,3\n")
    trained = []
    monkeypatch.setattr(S, "train", lambda *a, **k: trained.append(a))
    model = S.SizedModel("mono_s0", "mono", 2, 2, "embedded", 0.5, 0, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"scaling\.csv: columns .* move the file away"):
        S.train_models([model], profile="p", steps=4)
    assert trained == []
    (tmp_path / "p" / "scaling.csv").write_text(",".join(S.SCALING_COLUMNS) + "\n")
    S.check_scaling_file("p")  # the current columns pass


def test_scaling_table_joins_size_and_training_facts():
    plan = S.plan_models("t", "embedded", sizes=(1, 2), strategies=("mono",), depth=2)
    sizes = pd.DataFrame({"backbone": ["embedded"] * 2, "layers": [1, 2], "total_params": [10, 20],
                          "non_embedding_params": [1, 2], "encode_texts_per_s": [200.0, 100.0]})
    training = pd.DataFrame({"model": ["mono_s0_L1", "mono_s0"], "train_seconds": [3.0, 6.0], "steps": [4, 4],
                             "reused": [False, True]})
    table = S.scaling_table(plan, sizes, training)
    assert list(table.columns) == S.SCALING_COLUMNS and len(table) == 4
    row = table.set_index("model").loc["mono_s0"]
    assert (row["layers"], row["non_embedding_params"], row["train_seconds"]) == (2, 2, 6.0)
    assert np.isnan(table.set_index("model").loc["zero-shot_L1", "train_seconds"])


def test_write_summaries_writes_non_empty_tables_only(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "results_dir", lambda profile: tmp_path / profile)
    paths = S.write_summaries("p", mlqa_gaps=pd.DataFrame({"layers": [3], "estimate": [0.01]}),
                              xquad_gaps=pd.DataFrame())
    assert [p.name for p in paths] == ["07_mlqa_gaps.csv"]
    assert pd.read_csv(paths[0]).to_dict("list") == {"layers": [3], "estimate": [0.01]}
    assert not (tmp_path / "p" / "07_xquad_gaps.csv").exists()


def test_seeds_and_arms():
    assert S.parse_seeds("0, 1,2") == (0, 1, 2)
    for bad in ("", "0,x", "-1", "1,1"):
        with pytest.raises(ConfigError, match="seeds"):
            S.parse_seeds(bad)
    plan = S.plan_models("t", "embedded", sizes=(1, 2), strategies=("mono", "hybrid"), seeds=(0, 3), depth=2)
    assert [m.name for m in plan if m.layers == 1] == ["zero-shot_L1", "mono_s0_L1", "mono_s3_L1",
                                                       "hybrid_a0.5_s0_L1", "hybrid_a0.5_s3_L1"]
    assert {m.arm for m in plan if m.strategy == "hybrid"} == {"hybrid_a0.5_L1", "hybrid_a0.5"}
    # notebook 03's runs at full depth may have more seeds than the smaller sizes
    plan = S.plan_models("t", "embedded", sizes=(1, 2), strategies=("mono",), seeds=(0,), depth=2,
                         full_size_seeds=(0, 1, 2))
    assert [m.name for m in plan] == ["zero-shot_L1", "mono_s0_L1", "zero-shot", "mono_s0", "mono_s1", "mono_s2"]
    with pytest.raises(ConfigError, match="seeds"):
        S.plan_models("t", "embedded", sizes=(1, 2), seeds=(0,), depth=2, full_size_seeds=(1, 1))
    assert models.arm_name("distilled-L3__mono_s12") == "distilled-L3__mono"
    assert models.arm_name("zero-shot_distilled-L3") == "zero-shot_distilled-L3"


def fake_student(root, layers: int):
    folder = root / "models" / f"distilled-L{layers}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": layers}))
    return folder


def test_distilled_axis_uses_the_students_below_the_full_depth(tmp_path, monkeypatch):
    from lib import backbones

    monkeypatch.setattr(backbones, "CACHE_DIR", tmp_path)
    with pytest.raises(ModelError, match=r"python -m lib.distill --layers 1"):
        S.plan_models("t", "embedded", sizes=(1, 2), strategies=("cross",), depth=2, axis="distilled")
    student = fake_student(tmp_path, 1)
    plan = S.plan_models("t", "embedded", sizes=(1, 2), strategies=("cross",), seeds=(0, 1), depth=2,
                         axis="distilled")
    assert [m.name for m in plan] == ["zero-shot_distilled-L1", "distilled-L1__cross_s0", "distilled-L1__cross_s1",
                                      "zero-shot", "cross_s0", "cross_s1"]
    small = [m for m in plan if m.layers == 1]
    assert {m.backbone for m in small} == {"distilled-L1"} and {m.num_layers for m in small} == {0}
    assert S.backbone_depth("distilled-L1") == 1 and backbones.distilled_dir("distilled-L1") == student
    assert {m.arm for m in small if m.trained} == {"distilled-L1__cross"}
    with pytest.raises(ConfigError, match="size_axis"):
        S.plan_models("t", "embedded", sizes=(1,), depth=2, axis="pruned")
    with pytest.raises(ConfigError, match="backbone='embedded'"):
        S.plan_models("t", str(student), sizes=(1,), depth=1, axis="distilled")

