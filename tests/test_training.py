"""InfoNCE, TrainConfig and train(): outputs, resume, reuse (tiny encoder, tiny data)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lib import machine, training_data
from lib.backbones import load_encoder
from lib.contrastive import info_nce
from lib.errors import ConfigError
from lib.sampling import BatchSampler, batches_frame
from lib.training import LOG_COLUMNS, TrainConfig, run_batches, run_name, train
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return make_pairs()


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(backbone="tiny", strategy="hybrid", steps=6, batch_size=4, warmup_steps=2, eval_every=3,
                lr=1e-3, bf16=False, val_pairs=16)
    return TrainConfig(**(base | kw))


def weights(encoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


# ------------------------------------------------------------------ loss


def reference_info_nce(q: np.ndarray, p: np.ndarray, t: float) -> float:
    """Explicit log-softmax per query, float64 loops."""
    total = 0.0
    for i in range(len(q)):
        scores = [float(q[i] @ p[j]) / t for j in range(len(p))]
        top = max(scores)
        log_z = top + math.log(sum(math.exp(s - top) for s in scores))
        total += log_z - scores[i]
    return total / len(q)


def test_info_nce_matches_reference():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(5, 7, generator=g, dtype=torch.float64), dim=1)
    p = torch.nn.functional.normalize(torch.randn(5, 7, generator=g, dtype=torch.float64), dim=1)
    for t in (0.01, 0.05, 1.0):
        assert float(info_nce(q, p, t)) == pytest.approx(reference_info_nce(q.numpy(), p.numpy(), t), rel=1e-10)
    # explicit labels: local queries against a larger (gathered) passage set
    extra = torch.randn(3, 7, generator=g, dtype=torch.float64)
    bigger = torch.cat([extra, p])
    got = info_nce(q, bigger, 0.05, labels=torch.arange(5) + 3)
    want = -torch.log_softmax(q @ bigger.T / 0.05, dim=1)[torch.arange(5), torch.arange(5) + 3].mean()
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    with pytest.raises(ConfigError, match="must be"):
        info_nce(q, p[:, :3], 0.05)


def test_info_nce_gradcheck():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.5), (q, p), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- config


def test_config_roundtrip_and_names():
    cfg = TrainConfig(strategy="hybrid", alpha=0.25, seed=0, num_layers=6)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert run_name(cfg) == "hybrid_a0.25_s0_L6"
    assert run_name(TrainConfig(strategy="mono", seed=2)) == "mono_s2"
    assert TrainConfig(strategy="mono", alpha=0.3).alpha == 1.0  # alpha is the mono share
    assert TrainConfig(strategy="cross").alpha == 0.0
    assert (TrainConfig().steps, TrainConfig().batch_size, TrainConfig().lr) == (120, 32, 3e-5)


@pytest.mark.parametrize("kw, match", [
    (dict(strategy="both"), "strategy='both'"),
    (dict(alpha=2.0), "alpha=2.0"),
    (dict(steps=0), "steps=0"),
    (dict(batch_size="32"), "batch_size='32'"),
    (dict(warmup_steps=500), "warmup_steps=500"),
    (dict(temperature=0.0), "temperature=0.0"),
    (dict(bf16="yes"), "bf16='yes'"),
    (dict(freeze_word_embeddings=1), "freeze_word_embeddings=1"),
    (dict(dataset_choice="equal"), "dataset_choice='equal'"),
])
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig key\(s\) \['stpes'\]"):
        TrainConfig.from_dict({"stpes": 10})


# ----------------------------------------------------------------- train


def test_train_writes_outputs(tmp_path, pairs):
    cfg = tiny_cfg()
    enc = build_tiny_encoder(seed=0)
    before = weights(enc)
    out = train(cfg, tmp_path / "run", pairs=pairs, encoder=enc, progress=False)
    for name in ("model", "last", "train_config.json", "train_log.csv", "batches.csv"):
        assert (out / name).exists(), name
    assert not (out / "checkpoint").exists()
    log = pd.read_csv(out / "train_log.csv")
    assert list(log.columns) == LOG_COLUMNS and log["step"].tolist() == list(range(7))
    assert log["val_loss"].notna().tolist() == [True, False, False, True, False, False, True]
    assert log.loc[1, "lr"] == 0.0 and log.loc[2, "lr"] == pytest.approx(5e-4)  # warm-up
    saved = json.loads((out / "train_config.json").read_text())
    assert {k: saved[k] for k in cfg.to_dict()} == cfg.to_dict()
    assert saved["best_step"] in (3, 6)
    assert saved["best_val_loss"] == pytest.approx(log.loc[log["step"] == saved["best_step"], "val_loss"].item())
    want = batches_frame(pairs, BatchSampler(pairs, "hybrid", 4, 0.5, seed=0).batches(6))
    got = pd.read_csv(out / "batches.csv", dtype={"item_id": str})
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # word embeddings frozen, the rest trained; last/ holds the final weights
    after = weights(enc)
    assert torch.equal(after["embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"])
    assert not torch.equal(after["encoder.layer.0.attention.self.query.weight"],
                           before["encoder.layer.0.attention.self.query.weight"])
    last = load_encoder(str(out / "last"))
    for k, v in last.model.state_dict().items():
        torch.testing.assert_close(v, after[k])


def test_resume_equals_uninterrupted(tmp_path, pairs):
    """Interrupted after step 3 (checkpoint at step 2), resumed: final weights equal (fp32, atol 1e-6)."""
    cfg = tiny_cfg()
    assert build_tiny_encoder(0).model.config.hidden_dropout_prob > 0  # dropout RNG matters
    full = build_tiny_encoder(0)
    train(cfg, tmp_path / "full", pairs=pairs, encoder=full, progress=False, checkpoint_every=2)

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", pairs=pairs, encoder=build_tiny_encoder(0), progress=False,
              checkpoint_every=2, callback=crash)
    assert (tmp_path / "cut" / "checkpoint" / "state.pt").is_file()
    assert not (tmp_path / "cut" / "train_config.json").exists()
    steps_seen = []
    resumed = build_tiny_encoder(0)
    train(cfg, tmp_path / "cut", pairs=pairs, encoder=resumed, progress=False, checkpoint_every=2,
          callback=lambda step, row: steps_seen.append(step))
    assert steps_seen == [3, 4, 5, 6]
    a, b = weights(full), weights(resumed)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "train_log.csv").drop(columns="pairs_per_s"),
                                  pd.read_csv(tmp_path / "full" / "train_log.csv").drop(columns="pairs_per_s"))
    # the machine each part ran on is kept with the time (one machine here, so listed once)
    saved = json.loads((tmp_path / "cut" / "train_config.json").read_text())
    assert saved["machines"] == [{"cpu_model": machine.cpu_model(), "precision": saved["precision"]}]
    assert saved["cpu_model"] == machine.cpu_model() and saved["precision"] in ("bf16", "fp32")


def test_finished_run_is_reused_and_other_config_refused(tmp_path, pairs, capsys):
    cfg = tiny_cfg(steps=2, eval_every=0, strategy="mono")
    train(cfg, tmp_path / "run", pairs=pairs, encoder=build_tiny_encoder(0), progress=False)
    enc = build_tiny_encoder(0)
    before = weights(enc)
    calls = []
    train(cfg, tmp_path / "run", pairs=pairs, encoder=enc, progress=False, callback=lambda s, r: calls.append(s))
    assert calls == [] and "reusing the finished run" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in weights(enc).items())
    with pytest.raises(ConfigError, match=r"another config .*'seed': \(0, 1\).*Remove that folder"):
        train(tiny_cfg(steps=2, eval_every=0, strategy="mono", seed=1), tmp_path / "run", pairs=pairs,
              encoder=build_tiny_encoder(0), progress=False)


def test_a_finished_run_keeps_its_record_and_is_reused_without_its_weights(tmp_path, pairs, capsys, monkeypatch):
    """The record written at the end names both checkpoints as describe_model does; a run folder that came
    with the results (record, logs; weights left on the machine that trained it) is not trained again."""
    from lib import models

    cfg = tiny_cfg(steps=2, eval_every=1, strategy="mono")
    out = train(cfg, tmp_path / "run", pairs=pairs, encoder=build_tiny_encoder(0), progress=False)
    record = models.read_record(out)
    assert record["kept"]["fingerprint"] == models.describe_model(str(out)).fingerprint
    assert record["kept"]["layers"] == 2
    if record["last"]["same_as_kept"]:
        assert record["last"]["fingerprint"] is None
    else:
        assert record["last"]["fingerprint"] == models.describe_model(str(out), checkpoint="last").fingerprint
    drawn = pd.read_csv(out / "batches.csv", dtype={"item_id": str})
    for folder in ("model", "last"):
        shutil.rmtree(out / folder)
    (out / "batches.csv").unlink()  # not carried either: drawn again from the config, the same batches
    monkeypatch.setattr(training_data, "load_training_pairs", lambda max_items=0: pairs)
    pd.testing.assert_frame_equal(run_batches(out), drawn)
    capsys.readouterr()
    calls = []
    train(cfg, out, pairs=pairs, encoder=build_tiny_encoder(0), progress=False,
          callback=lambda s, r: calls.append(s))
    assert calls == [] and "weights stayed where it was trained" in capsys.readouterr().out


def test_train_without_validation_split(tmp_path, pairs):
    out = train(tiny_cfg(steps=2, strategy="cross"), tmp_path / "run", pairs=pairs.drop(columns="split"),
                encoder=build_tiny_encoder(0), progress=False)
    assert (out / "model").is_dir() and pd.read_csv(out / "train_log.csv")["val_loss"].isna().all()


def test_batch_larger_than_a_language_pool_stops_training(tmp_path, pairs):
    """On the full data (max_items 0) a pool smaller than one batch is an error naming it: dataset,
    language and size."""
    train_mono = pairs[(pairs["split"] == "train") & (pairs["query_lang"] == pairs["doc_lang"])]
    sizes = train_mono.groupby(["dataset", "query_lang"]).size()
    batch = int(sizes.min()) + 1
    too_small = sizes[sizes < batch]
    assert len(too_small) < len(sizes)  # some pools are large enough: the error must name the right one
    names = "|".join(f"dataset '{d}', language '{lang}': {n} pairs" for (d, lang), n in too_small.items())
    with pytest.raises(ConfigError, match=rf"batch_size={batch} is larger than the mono pool of ({names}) "
                                          rf"in .* with only {int(sizes.min())} distinct items/passages"):
        train(tiny_cfg(strategy="mono", batch_size=batch), tmp_path / "run", pairs=pairs,
              encoder=build_tiny_encoder(), progress=False)


def test_restore_weights_brings_back_the_recorded_run_or_leaves_it_alone(tmp_path, pairs):
    """A run that came without its weights is trained again; equal logs (to the last bit) give it back its
    weights under the recorded fingerprints; a log that differs leaves the run folder as it was."""
    from lib import models
    from lib.errors import ModelError
    from lib.training import restore_weights

    cfg = tiny_cfg(steps=4, eval_every=1, strategy="hybrid", lr=3e-2)
    out = train(cfg, tmp_path / "p" / "models" / run_name(cfg), pairs=pairs, encoder=build_tiny_encoder(0),
                progress=False)
    specs = {c: models.describe_model(str(out), checkpoint=c) for c in ("model", "last")}
    trained = weights(specs["model"].load())
    for folder in ("model", "last"):
        shutil.rmtree(out / folder)
    (out / "batches.csv").unlink()

    done = restore_weights(out, pairs=pairs, encoder=build_tiny_encoder(0), progress=False)
    assert done["restored"] and done["train_log_rows"] == 5 and done["validation_points"] == 5
    assert (out / "model").is_dir() and (out / "batches.csv").is_file() and (out / models.RESTORED).is_file()
    assert not (tmp_path / "p" / "restore" / out.name).exists()  # the working folder is gone
    for checkpoint, spec in specs.items():
        again = models.describe_model(str(out), checkpoint=checkpoint)
        assert (again.name, again.fingerprint) == (spec.name, spec.fingerprint)
    restored = weights(models.describe_model(str(out)).load())
    assert all(torch.equal(trained[k], restored[k]) for k in trained)
    assert restore_weights(out)["restored"] is False  # weights here: nothing to do

    # weights changed after the restore are not the recorded run any more
    weights_file = next(p for p in (out / "model").rglob("*") if p.is_file() and p.suffix != ".json")
    weights_file.touch()
    assert models.describe_model(str(out)).fingerprint != specs["model"].fingerprint

    # a recorded log that the new training does not reproduce: refused, the run folder untouched
    for folder in ("model", "last"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / models.RESTORED).unlink()
    log = pd.read_csv(out / "train_log.csv")
    log.loc[log["step"] == 2, "loss"] += 1e-7
    log.to_csv(out / "train_log.csv", index=False)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ModelError, match=r"hybrid_a0.5_s0: training it again here is not the recorded run "
                                         r"\(loss first differs at step 2.*left as it was"):
        restore_weights(out, pairs=pairs, encoder=build_tiny_encoder(0), progress=False)
    assert sorted(p.name for p in out.iterdir()) == before and not models.has_weights(out)
    assert (tmp_path / "p" / "restore" / out.name / "model").is_dir()  # kept for a look


def test_restore_command_names_a_missing_run(tmp_path, monkeypatch, capsys):
    from lib import paths
    from lib.training import main

    monkeypatch.setattr(paths, "results_dir", lambda profile: tmp_path / profile)
    assert main(["restore", "p", "mono_s9"]) == 1
    out = capsys.readouterr().out
    assert "error:" in out and "models/mono_s9 is not a run folder (no train_config.json)" in out
