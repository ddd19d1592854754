"""Distilled students: layer choice, training-side texts only, cached teacher embeddings, learning."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lib import data
from lib import training_data
from lib import distill as D
from lib.backbones import load_encoder
from lib.errors import ConfigError, DataError
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.fixture
def no_evaluation_data(monkeypatch):
    """Every loader of evaluation data raises: a student must never read them."""
    def forbidden(*args, **kwargs):
        raise AssertionError("distillation read an evaluation set")

    for name in ("load_lareqa", "load_mlqa_retrieval", "load_dureader"):
        monkeypatch.setattr(data, name, forbidden)
    monkeypatch.setattr(training_data, "load_training_pairs", lambda *a, **k: make_pairs())


def test_spaced_layers():
    assert D.spaced_layers(12, 3) == (3, 7, 11)
    assert D.spaced_layers(12, 6) == (1, 3, 5, 7, 9, 11)
    assert D.spaced_layers(4, 4) == (0, 1, 2, 3)
    with pytest.raises(ConfigError, match="1..12"):
        D.spaced_layers(12, 13)


def test_texts_come_from_the_training_split_of_training_datasets(no_evaluation_data):
    pairs = make_pairs()
    frame = D.distillation_texts()
    train = pairs[pairs["split"] == "train"]
    assert set(frame["dataset"]) <= set(D.TRAINING_SOURCES)
    assert set(frame.loc[frame["role"] == "query", "text"]) == set(train["query"])
    assert set(frame.loc[frame["role"] == "passage", "text"]) == set(train["passage"])
    assert not frame.duplicated(["text", "role"]).any()
    val_only = set(pairs.loc[pairs["split"] == "val", "query"]) - set(train["query"])
    assert not val_only & set(frame["text"])
    bad = pairs.assign(dataset=np.where(pairs.index == 0, "xquad_r", pairs["dataset"]))
    with pytest.raises(DataError, match=r"\['xquad_r'\] are not training data"):
        D.distillation_texts(bad)


def test_student_learns_the_teacher_and_loads_as_a_backbone(tmp_path, no_evaluation_data, monkeypatch):
    teacher = build_tiny_encoder(seed=1, layers=4)
    with torch.no_grad():  # make every layer matter, so that dropping two of them moves the embeddings
        for layer in teacher.model.encoder.layer:
            layer.output.dense.weight.mul_(30)
    cfg = D.DistillConfig(layers=2, steps=60, batch_size=16, lr=3e-3, warmup_steps=5, held_out=16,
                          eval_every=60, max_length=16, bf16=False)
    out = D.distill(cfg, tmp_path / "student", teacher=teacher, cache=tmp_path / "cache", progress=False)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["teacher_layers"] == [1, 3]
    assert recipe["sources"] == ["mlqa_test", "tydiqa"]
    start, end = recipe["log"][0]["held_out_cosine"], recipe["held_out_cosine"]
    assert end > start + 0.01, (start, end)  # the student moved towards the teacher on unseen texts
    losses = [r["loss"] for r in recipe["log"][1:]]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    student = load_encoder(str(out))
    assert student.model.config.num_hidden_layers == 2
    # the copied layers are the teacher's 2nd and 4th before training changed them
    fresh = D.init_student(teacher, (1, 3), "s")
    for a, b in zip(fresh.model.encoder.layer, (teacher.model.encoder.layer[1], teacher.model.encoder.layer[3])):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)

    # the teacher's embeddings are cached: a second run does not encode with the teacher
    def no_encode(*args, **kwargs):
        raise AssertionError("teacher encoded twice")

    monkeypatch.setattr(teacher, "encode", no_encode)
    texts = D.distillation_texts()
    cached = D.teacher_embeddings(teacher, texts, 16, tmp_path / "cache")
    assert cached.shape == (len(texts), teacher.dim)


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="exactly 3 teacher layers"):
        D.DistillConfig(layers=3, init_layers=(0, 1))
    with pytest.raises(ConfigError, match="batch_size"):
        D.DistillConfig(batch_size=1)
    with pytest.raises(ConfigError, match="distinct increasing"):
        D.init_student(build_tiny_encoder(layers=4), (2, 1), "s")


def test_an_interrupted_distillation_resumes_to_the_same_student(tmp_path, no_evaluation_data, monkeypatch):
    """Stopped after its second checkpoint, a distillation resumes there and ends with the weights, log and
    recipe of an uninterrupted one; the checkpoint folder is gone afterwards."""
    teacher = build_tiny_encoder(seed=1, layers=4)
    cfg = D.DistillConfig(layers=2, steps=7, batch_size=8, lr=3e-3, warmup_steps=2, held_out=8,
                          eval_every=3, max_length=16, bf16=False)
    whole = D.distill(cfg, tmp_path / "whole", teacher=teacher, cache=tmp_path / "cache", progress=False,
                      checkpoint_every=2)

    saves = []
    real_save = D._save_checkpoint

    def save_then_stop(folder, state):
        real_save(folder, state)
        saves.append(state["step"])
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(D, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        D.distill(cfg, tmp_path / "parts", teacher=teacher, cache=tmp_path / "cache", progress=False,
                  checkpoint_every=2)
    assert saves == [2, 4] and not (tmp_path / "parts").exists()
    assert (D.checkpoint_dir(tmp_path / "parts") / "state.pt").is_file()
    monkeypatch.setattr(D, "_save_checkpoint", real_save)
    parts = D.distill(cfg, tmp_path / "parts", teacher=teacher, cache=tmp_path / "cache", progress=False,
                      checkpoint_every=2)
    assert not D.checkpoint_dir(tmp_path / "parts").exists()
    a, b = load_encoder(str(whole)), load_encoder(str(parts))
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.equal(pa, pb), name
    ra, rb = (json.loads((f / "recipe.json").read_text()) for f in (whole, parts))
    assert ra["log"] == rb["log"] and rb["resumed_at"] == 4 and ra["resumed_at"] is None

    # a checkpoint of another recipe is not resumed from
    monkeypatch.setattr(D, "_save_checkpoint", save_then_stop)
    saves.clear()
    with pytest.raises(KeyboardInterrupt):
        D.distill(cfg, tmp_path / "other", teacher=teacher, cache=tmp_path / "cache", progress=False,
                  checkpoint_every=2)
    monkeypatch.setattr(D, "_save_checkpoint", real_save)
    other = D.DistillConfig(**{**dataclasses.asdict(cfg), "lr": 1e-3})
    with pytest.warns(UserWarning, match="another distillation"):
        D.distill(other, tmp_path / "other", teacher=teacher, cache=tmp_path / "cache", progress=False,
                  checkpoint_every=2)
    assert json.loads((tmp_path / "other" / "recipe.json").read_text())["resumed_at"] is None
