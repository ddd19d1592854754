"""Compact run folders, last/ pointers, export to standalone sentence-transformers / transformers folders."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lib import model_store as MS
from lib.backbones import load_encoder
from lib.errors import ModelError
from lib.training import TrainConfig, run_name, train
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder

WORD = "embeddings.word_embeddings.weight"
TEXTS = ["a1 a2 ?", "b3 b4 b5 .", "what is c1", "d2"]


@pytest.fixture(autouse=True)
def one_thread_fp32(monkeypatch, one_thread):
    """One thread (shared cores) and fp32 encoding, so embeddings compare exactly."""
    monkeypatch.setenv("HBT_BF16", "0")


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return make_pairs()


@pytest.fixture
def base_dir(tmp_path):
    """A tiny backbone saved as a model folder, so training can load it by path (cfg.backbone)."""
    return build_tiny_encoder(seed=0).save(tmp_path / "base")


def cfg_for(base_dir, **kw) -> TrainConfig:
    values = dict(backbone=str(base_dir), strategy="hybrid", steps=6, batch_size=4, warmup_steps=2, eval_every=3,
                  lr=1e-3, bf16=False, val_pairs=16)
    return TrainConfig(**(values | kw))


def weights(encoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


# ---------------------------------------------------------------- compact save / load


def test_compact_folder_stores_only_trained_tensors_and_loads_back(base_dir, tmp_path):
    enc = load_encoder(str(base_dir))
    enc.model.get_input_embeddings().weight.requires_grad_(False)
    with torch.no_grad():  # "training": every non-frozen tensor moves
        for n, p in enc.model.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    base = MS.base_reference(enc, str(base_dir))
    assert list(base["frozen"]) == [WORD]
    out = MS.save_compact(enc, tmp_path / "compact", base, name="tiny-run")
    assert MS.kind(out) == "compact" and not (out / "model.safetensors").exists()
    from safetensors.torch import load_file
    stored = load_file(str(out / MS.COMPACT_WEIGHTS))
    assert WORD not in stored and set(stored) == set(enc.model.state_dict()) - {WORD}
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {MS.STORE_DTYPE}
    assert json.loads((out / MS.BASE_REF).read_text())["stored_dtype"] == "float16"
    back = load_encoder(str(out))
    assert back.name == "tiny-run" and back.pooling == "mean" and back.query_prefix == "query: "
    for k, v in weights(enc).items():  # frozen tensors exact, trained ones as their fp16 rounding
        want = v if k == WORD else v.to(MS.STORE_DTYPE).to(v.dtype)
        assert torch.equal(back.model.state_dict()[k], want), k
        assert torch.allclose(back.model.state_dict()[k], v, rtol=2 ** -10, atol=1e-7), k
    a, b = back.encode(TEXTS, "query"), enc.encode(TEXTS, "query")
    assert np.min(np.sum(a * b, axis=1)) >= 0.9999  # the stored model's embeddings are the trained one's
    # a damaged weights file is named, not loaded
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / MS.COMPACT_WEIGHTS).write_bytes((out / MS.COMPACT_WEIGHTS).read_bytes()[:-10])
    with pytest.raises(ModelError, match="trained.safetensors is missing or differs"):
        load_encoder(str(damaged))
    # truncation applies to compact folders like to any other
    assert load_encoder(str(out), num_layers=1).model.config.num_hidden_layers == 1


def test_compact_folder_refuses_a_changed_base(base_dir, tmp_path):
    enc = load_encoder(str(base_dir))
    enc.model.get_input_embeddings().weight.requires_grad_(False)
    out = MS.save_compact(enc, tmp_path / "compact", MS.base_reference(enc, str(base_dir)))
    build_tiny_encoder(seed=1).save(base_dir)  # the backbone folder now holds other word embeddings
    with pytest.raises(ModelError, match="another embeddings.word_embeddings.weight"):
        load_encoder(str(out))


def test_same_as_pointer_loads_its_target(base_dir, tmp_path):
    (tmp_path / "run").mkdir()
    build_tiny_encoder(seed=3).save(tmp_path / "run" / "model")
    MS.save_same_as(tmp_path / "run" / "last", "model")
    assert MS.kind(tmp_path / "run" / "last") == "pointer"
    a, b = load_encoder(str(tmp_path / "run" / "model")), load_encoder(str(tmp_path / "run" / "last"))
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    MS.save_same_as(tmp_path / "run" / "model2", "nowhere")
    with pytest.raises(ModelError, match="does not exist"):
        load_encoder(str(tmp_path / "run" / "model2"))


# ---------------------------------------------------------------- training writes compact runs


def test_training_from_a_backbone_writes_a_compact_named_run(base_dir, tmp_path, pairs):
    cfg = cfg_for(base_dir)
    out = train(cfg, tmp_path / "models" / run_name(cfg), pairs=pairs, progress=False)
    assert MS.kind(out / "model") == "compact"
    facts = json.loads((out / "train_config.json").read_text())
    # last/ is never a second full copy: a pointer when the last step is the best one, else compact
    assert MS.kind(out / "last") == ("pointer" if facts["best_step"] == cfg.steps else "compact")
    model = load_encoder(str(out / "model"))
    base = load_encoder(str(base_dir))
    whole_run = load_encoder(str(out))  # the run folder stands for its model/
    assert whole_run.name == model.name and torch.equal(whole_run.model.embeddings.position_embeddings.weight,
                                                         model.model.embeddings.position_embeddings.weight)
    assert model.name == f"tiny-bert-h32-l2-s0-{run_name(cfg)}" != base.name
    assert torch.equal(model.model.state_dict()[WORD], base.model.state_dict()[WORD])  # frozen
    moved = [k for k, v in base.model.state_dict().items() if not torch.equal(v, model.model.state_dict()[k])]
    assert len(moved) == len(base.model.state_dict()) - 1  # everything else was trained
    card = (out / "model" / "README.md").read_text()
    for needle in ("| batch strategy | hybrid |", "| alpha (share of monolingual batches) | 0.5 |", "| seed | 0 |",
                   "6 x 4 pairs", str(base_dir), "MLQA v1 test", f"step {facts['best_step']}"):
        assert needle in card, needle
    # a compact folder of the 2-layer tiny model is a fraction of a full one
    full = build_tiny_encoder(seed=0).save(tmp_path / "full")
    assert MS.folder_bytes(out / "model") < 0.8 * MS.folder_bytes(full)


def test_compact_run_resumes_from_its_checkpoint(base_dir, tmp_path, pairs):
    """Interrupted after step 3 (checkpoint at step 2), resumed: same model/ as an uninterrupted run."""
    cfg = cfg_for(base_dir)
    train(cfg, tmp_path / "full", pairs=pairs, progress=False, checkpoint_every=2)

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", pairs=pairs, progress=False, checkpoint_every=2, callback=crash)
    assert MS.kind(tmp_path / "cut" / "model") == "compact"  # step 3's validation already saved model/
    train(cfg, tmp_path / "cut", pairs=pairs, progress=False, checkpoint_every=2)
    for part in ("model", "last"):
        a, b = load_encoder(str(tmp_path / "full" / part)), load_encoder(str(tmp_path / "cut" / part))
        for k, v in a.model.state_dict().items():
            torch.testing.assert_close(b.model.state_dict()[k], v, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- export: sentence-transformers and AutoModel


def test_export_gives_a_folder_sentence_transformers_and_automodel_load(base_dir, tmp_path, pairs, caplog):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is optional "
                             "(requirements-bench.txt)")
    from transformers import AutoModel

    cfg = cfg_for(base_dir, strategy="mono", steps=3, eval_every=0)
    run = train(cfg, tmp_path / "results" / "p" / "models" / run_name(cfg), pairs=pairs, progress=False)
    pd.DataFrame([{"model": run.name, "dataset": "xquad_r", "setting": "cross", "query_lang": "a", "doc_lang": "b",
                   "metric": "map", "value": 0.25},
                  {"model": run.name, "dataset": "xquad_r", "setting": "cross", "query_lang": "b", "doc_lang": "a",
                   "metric": "map", "value": 0.75},
                  {"model": "other", "dataset": "xquad_r", "setting": "cross", "query_lang": "a", "doc_lang": "b",
                   "metric": "map", "value": 0.9}]).to_csv(tmp_path / "results" / "p" / "metrics.csv", index=False)
    assert "Not evaluated yet" in (run / "model" / "README.md").read_text()
    assert MS.main(["card", str(run)]) == 0  # after evaluation: the run's own card gets its metrics
    assert "| xquad_r | cross | map | 0.5000 |" in (run / "model" / "README.md").read_text()
    assert MS.main(["export", str(run), str(tmp_path / "export")]) == 0
    out = tmp_path / "export"
    assert MS.kind(out) == "full"
    card = (out / "README.md").read_text()
    assert "| xquad_r | cross | map | 0.5000 |" in card and "0.9000" not in card  # this run's rows only
    with pytest.raises(ModelError, match="exists"):
        MS.export(run, out)

    ours = load_encoder(str(run / "model"))
    model = st.SentenceTransformer(str(out), device="cpu")
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    for role, fn in (("query", model.encode_query), ("passage", model.encode_document)):
        theirs = fn(TEXTS, convert_to_numpy=True)
        mine = ours.encode(TEXTS, role)
        cos = (theirs * mine).sum(1) / np.linalg.norm(theirs, axis=1) / np.linalg.norm(mine, axis=1)
        assert cos.min() >= 0.9999 and np.abs(theirs - mine).max() < 1e-5, (role, cos)
        np.testing.assert_allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)  # Normalize module
    plain = model.encode(TEXTS, convert_to_numpy=True)  # no prompt: differs from the query embedding
    assert not np.allclose(plain, ours.encode(TEXTS, "query"), atol=1e-3)

    # AutoModel: every weight from the file (the pooler is an identity placeholder), nothing new
    caplog.set_level(logging.WARNING)
    auto, info = AutoModel.from_pretrained(str(out), output_loading_info=True)
    assert info["missing_keys"] in (set(), []) and info["unexpected_keys"] in (set(), [])
    torch.testing.assert_close(auto.pooler.dense.weight, torch.eye(auto.config.hidden_size))
    # and the project's loader drops the placeholder pooler again
    back = load_encoder(str(out))
    assert back.model.pooler is None and back.name == ours.name
    np.testing.assert_allclose(back.encode(TEXTS, "query"), ours.encode(TEXTS, "query"), atol=1e-6)
    assert "MISSING" not in caplog.text and "newly initialized" not in caplog.text


def test_full_save_writes_sentence_transformers_files(tmp_path):
    enc = build_tiny_encoder(seed=2)
    out = enc.save(tmp_path / "full")
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    prompts = json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: ", "passage": "passage: "}
    info = MS.describe(out)
    assert info["parts"]["full"]["kind"] == "full" and info["bytes"] == MS.folder_bytes(out)


def test_export_refuses_what_is_not_a_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        MS.export(tmp_path / "empty", tmp_path / "out")


@pytest.mark.real_model
def test_sentence_transformers_reproduces_a_trained_embedded_run(tmp_path, pairs, monkeypatch):
    """A smoke-sized run of the embedded backbone (1 layer, 2 steps): exported, SentenceTransformer's
    encode_query / encode_document equal the project's embeddings (default precision: bf16 where the CPU has it)."""
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is optional "
                             "(requirements-bench.txt)")
    monkeypatch.delenv("HBT_BF16", raising=False)
    cfg = TrainConfig(backbone="embedded", num_layers=1, strategy="hybrid", steps=2, batch_size=4, warmup_steps=1,
                      eval_every=0, lr=1e-4, bf16=False, val_pairs=8)
    run = train(cfg, tmp_path / "models" / run_name(cfg), pairs=pairs, progress=False)
    assert MS.kind(run / "model") == "compact" and MS.kind(run / "last") == "pointer"
    assert MS.folder_bytes(run) < 10e6  # 1 layer: 1.97M trained values, not the 96M word embeddings
    out = MS.export(run, tmp_path / "export")
    model = st.SentenceTransformer(str(out), device="cpu")
    ours = load_encoder(str(run))
    assert ours.name == "multilingual-e5-small-q4-hybrid_a0.5_s0_L1"
    queries = ["Wer schrieb Hamlet?", "¿Cuándo se fundó la ciudad?", "谁发明了电话？", "Who wrote Hamlet?"]
    docs = ["Hamlet ist eine Tragödie von William Shakespeare.", "La ciudad fue fundada en 1521."]
    for fn, role, texts in ((model.encode_query, "query", queries), (model.encode_document, "passage", docs)):
        cos = (fn(texts, convert_to_numpy=True) * ours.encode(texts, role)).sum(1)
        assert cos.min() >= 0.9999, (role, cos)
