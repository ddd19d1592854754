"""Fault injection: damaged inputs, bad profiles, interruptions, kills, full disks and concurrent runs.

Every case asserts the message the user sees and that no result file is
half-written or lost. Tiny data only; the processes killed here are this
test's own children. The full sweep over real runs is benchmarks/fault_sweep.py
(table in docs/faults.md).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from lib import config, data_files, integrity, paths, runner, training_data
from lib.results import upsert_csv
from lib.errors import ConfigError, DataError, ModelError
from lib.integrity import LockedError, RunLock

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Checksum cache in a temporary folder: nothing here touches the user's cache."""
    monkeypatch.setenv("HBT_CACHE_DIR", str(tmp_path / "cache"))
    ENV["HBT_CACHE_DIR"] = str(tmp_path / "cache")


@pytest.fixture()
def results(tmp_path, monkeypatch):
    """results/<profile>/ under tmp_path (lib.paths.results_dir reads PROJ_ROOT at call time)."""
    monkeypatch.setattr(paths, "PROJ_ROOT", tmp_path)
    # the real data mirror and backbone are checked by their own tests and by benchmarks/fault_sweep.py
    monkeypatch.setattr(runner, "check_data", lambda runs: None)
    monkeypatch.setattr(runner, "check_backbone", lambda runs: None)
    return tmp_path / "results"


def _py(code: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=ENV, capture_output=True, text=True,
                          timeout=timeout, **kw)


def _profile(tmp_path: Path, text: str, name: str = "fp") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------
# Data files: checked where they are read, missing files are errors


def _qa(path: Path, items):
    arts = [{"paragraphs": [{"context": ctx, "qas": [{"id": i, "question": q,
                                                      "answers": [{"text": a, "answer_start": ctx.find(a)}]}]}]}
            for i, q, ctx, a in items]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": arts}, ensure_ascii=False), encoding="utf-8")


@pytest.fixture()
def training_root(tmp_path, monkeypatch):
    """A tiny MLQA-test / TyDi layout with SHA256SUMS; HBT_DATA_DIR points to it."""
    root = tmp_path / "data"
    for c in ("de", "es"):
        for q in ("de", "es"):
            if q != c:
                _qa(root / "mlqa" / "test_partial" / f"test-context-{c}-question-{q}.json",
                    [("m1", f"{q} wo?", f"Satz eins. Die Antwort ist B{c}. Ende.", f"B{c}")])
    for lang in ("en", "ko", "sw"):
        _qa(root / "tydiqa_goldp" / "train_partial" / f"tydiqa.goldp.{lang}.train.json",
            [(f"{lang}{k}", f"{lang} q{k}?", f"One {k}. The answer is A{k}{lang}.", f"A{k}{lang}") for k in range(3)])
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))
    (root / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  ./{f}\n" for f in files))
    monkeypatch.setenv("HBT_DATA_DIR", str(root))
    training_data.clear_caches()
    data_files._checksums.cache_clear()
    data_files._VERIFIED.clear()
    yield root
    training_data.clear_caches()
    data_files._checksums.cache_clear()


def test_changed_byte_in_a_training_file_stops_before_training(training_root, tmp_path, tiny_encoder):
    from lib.training import TrainConfig, train

    assert len(training_data.load_training_pairs()) > 0  # intact: fine
    training_data.clear_caches()
    path = training_root / "tydiqa_goldp" / "train_partial" / "tydiqa.goldp.ko.train.json"
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"answer")] ^= 0x20  # 'answer' -> 'Answer': still valid JSON, different data
    path.write_bytes(bytes(raw))
    cfg = TrainConfig(backbone="tiny", strategy="mono", steps=2, batch_size=2, warmup_steps=0, bf16=False)
    with pytest.raises(DataError, match=r"tydiqa\.goldp\.ko\.train\.json is corrupt or truncated: its sha256 is "
                                        r"[0-9a-f]{16}, while .*SHA256SUMS lists [0-9a-f]{16} for it\. Re-copy"):
        train(cfg, tmp_path / "run", encoder=tiny_encoder, progress=False)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())  # nothing trained


def test_missing_training_file_is_an_error_not_fewer_pairs(training_root):
    (training_root / "tydiqa_goldp" / "train_partial" / "tydiqa.goldp.ko.train.json").unlink()
    with pytest.raises(DataError, match=r"tydiqa: 1 file\(s\) listed in .*SHA256SUMS are missing: "
                                        r".*tydiqa\.goldp\.ko\.train\.json.*re-copy"):
        training_data.load_training_pairs()


def test_checksums_are_remembered_by_size_and_mtime(training_root, monkeypatch):
    calls = []
    real = integrity.sha256_of
    monkeypatch.setattr(integrity, "sha256_of", lambda p, *a: calls.append(Path(p).name) or real(p, *a))
    path = training_root / "tydiqa_goldp" / "train_partial" / "tydiqa.goldp.en.train.json"
    data_files.verify_file(path)
    data_files._VERIFIED.clear()  # a new process: only the on-disk cache is left
    data_files.verify_file(path)
    assert calls == [path.name]  # hashed once
    path.write_bytes(path.read_bytes().replace(b"One", b"Two"))  # same size, new mtime
    data_files._VERIFIED.clear()
    with pytest.raises(DataError, match="is corrupt or truncated"):
        data_files.verify_file(path)
    assert calls == [path.name, path.name]


# --------------------------------------------------------------------------
# The converted backbone: checksums from conversion time


@pytest.fixture()
def fake_conversion(tmp_path, monkeypatch):
    """embedded_model_dir() over a temporary cache, converting a tiny encoder instead of the 470 MB one."""
    from lib import embedded_model as em
    from tiny_model import build_tiny_encoder

    monkeypatch.setattr(em, "CACHE_DIR", tmp_path / "cache")
    calls = []

    def convert(folder):
        calls.append(folder)
        tiny = build_tiny_encoder(seed=0)
        tiny.info = {"source_sha256": em.E5_BIN_SHA256, "conversion_version": em.CONVERSION_VERSION}
        folder = Path(folder)
        with paths.atomic_write(folder) as tmp:
            tiny.save(tmp)
            integrity.write_sums(tmp, [p.name for p in tmp.iterdir() if p.is_file()], em.EMBEDDED_SUMS)
        return folder

    monkeypatch.setattr(em, "convert_embedded", convert)
    return em, calls


def test_changed_byte_in_the_cached_backbone_is_detected_and_reconverted(fake_conversion, capsys):
    from lib.backbones import load_encoder

    em, calls = fake_conversion
    folder = em.embedded_model_dir()
    assert len(calls) == 1 and (folder / em.EMBEDDED_SUMS).is_file()
    assert em.embedded_model_dir() == folder and len(calls) == 1  # intact: reused
    original = (folder / "model.safetensors").read_bytes()
    weights = folder / "model.safetensors"
    raw = bytearray(original)
    raw[len(raw) // 2] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(raw))
    loaded = load_encoder("embedded")  # what training does first
    err = capsys.readouterr().err
    assert "model.safetensors has changed" in err and "Converting it again" in err
    assert len(calls) == 2 and weights.read_bytes() == original
    assert loaded.dim == 32


def test_truncated_backbone_is_reconverted_and_unwritable_cache_gives_the_command(fake_conversion, monkeypatch,
                                                                                   capsys):
    em, calls = fake_conversion
    folder = em.embedded_model_dir()
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert em.embedded_model_dir() == folder and len(calls) == 2
    assert "has changed" in capsys.readouterr().err
    weights.write_bytes(weights.read_bytes()[:100])

    def refuse(folder):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(em, "convert_embedded", refuse)
    with pytest.raises(ModelError, match=r"cannot write the converted embedded backbone to .*HBT_CACHE_DIR.*rm -rf"):
        em.embedded_model_dir()


def test_truncated_model_folder_is_a_model_error(tmp_path, tiny_encoder):
    from lib.backbones import load_encoder

    folder = tiny_encoder.save(tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(ModelError, match=r"model\.safetensors cannot be read .*truncated or corrupt.*Delete"):
        load_encoder(str(folder))


# --------------------------------------------------------------------------
# Profiles: every value checked before anything runs


@pytest.mark.parametrize("text, message", [
    ("notebooks:\n  03_training: {alpha: 1.5}\n", r"'alpha' .* must be in \[0, 1\], got 1\.5"),
    ("notebooks:\n  03_training: {sweep: {strategy: [mono, hybird]}}\n",
     r"03_training__strategy-hybird\): 'strategy' is 'hybird'; use one of mono, cross, hybrid"),
    ("notebooks:\n  03_training: {steps: 0}\n", r"'steps' must be >= 1, got 0"),
    ("notebooks:\n  03_training: {batch_size: 1}\n", r"'batch_size' must be >= 2"),
    ("notebooks:\n  03_training: {steps: 5, warmup_steps: 10}\n", r"'warmup_steps' \(10\) exceeds 'steps' \(5\)"),
    ("notebooks:\n  03_training: {lr: 0}\n", r"'lr' must be > 0"),
    ("notebooks:\n  03_training: {temperature: -1.0}\n", r"'temperature' must be > 0"),
    ("notebooks:\n  03_training: {dataset_choice: random}\n", r"'dataset_choice' is 'random'"),
    ("notebooks:\n  02_batch_sampling: {alpha: -0.1}\n", r"02_batch_sampling\): 'alpha'"),
    ("common: {num_layers: 13}\n", r"'num_layers' is 13, but backbone 'embedded' has 12 layers"),
    ("common: {backbone: ./no/such/folder}\n", r"'backbone' './no/such/folder': no model folder"),
    ("common: {backbone: 'bad id!'}\n", r"not a valid Hugging Face hub id"),
    ("notebooks:\n  04_evaluation: {datasets: 'xquad_r,tydiqa'}\n", r"'datasets' is 'xquad_r,tydiqa'"),
    ("notebooks:\n  04_evaluation: {n_bootstrap: 0}\n", r"'n_bootstrap' must be >= 1"),
    ("notebooks:\n  06_inference_efficiency: {dureader_source: web}\n", r"'dureader_source' is 'web'"),
    ("notebooks:\n  06_inference_efficiency: {threads: 0}\n", r"'threads' must be >= 1"),
    ("notebooks:\n  07_model_size_scaling: {layer_sizes: '2,13'}\n", r"has 12 layers, so each size must be in 1\.\.12"),
    ("notebooks:\n  07_model_size_scaling: {layer_sizes: '0,2'}\n", r"layer counts start at 1"),
    ("notebooks:\n  07_model_size_scaling: {strategies: 'mono,hybird'}\n", r"'strategies' is 'mono,hybird'"),
    ("notebooks:\n  07_model_size_scaling: {hub_backbones: 'a/b,bad id'}\n", r"'hub_backbones'"),
])
def test_dry_run_catches_every_bad_value(tmp_path, capsys, text, message):
    path = _profile(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        config.plan_runs(config.load_profile(str(path)))
    assert runner.main([str(path), "--dry-run"]) == runner.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("text, message", [
    ("", r"is empty: a profile must contain 'notebooks:'"),
    ("description: only words\n", r"sets no parameters .*a profile must contain 'notebooks:'"),
    ("notebooks: {}\ncommon: {}\n", r"sets no parameters"),
    ("- a\n- b\n", r"top level must be a mapping"),
])
def test_empty_profile_says_what_a_profile_must_contain(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config.load_profile(str(_profile(tmp_path, text)))


def test_shipped_profiles_pass_value_validation():
    for name in ("smoke", "default", "paper"):
        assert config.plan_runs(config.load_profile(name))


def test_relative_profile_path_resolves_from_the_callers_directory(tmp_path, monkeypatch):
    sub = tmp_path / "here"
    sub.mkdir()
    (sub / "mine.yaml").write_text("common: {max_items: 3}\n")
    monkeypatch.chdir(ROOT)  # as run_all.sh does after recording the caller's directory
    monkeypatch.setenv("HBT_CALLER_DIR", str(sub))
    assert config.load_profile("mine.yaml").path == sub / "mine.yaml"
    monkeypatch.delenv("HBT_CALLER_DIR")
    monkeypatch.chdir(sub)
    assert config.load_profile("./mine.yaml").path == sub / "mine.yaml"
    with pytest.raises(ConfigError, match=r"looked for .*here/other\.yaml; relative paths are taken from .*here"):
        config.load_profile("other.yaml")


# --------------------------------------------------------------------------
# Inputs of earlier notebooks


def test_notebook_without_its_inputs_names_the_notebook_to_run_first(tmp_path, results, capsys):
    path = _profile(tmp_path, "common: {max_items: 5, num_layers: 2}\n", name="fresh")
    assert runner.main([str(path), "--only", "04"]) == runner.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "notebook 04_evaluation needs the trained models of notebook 03" in err
    assert "Run notebook 03 first" in err and "--only 03" in err and "--allow-missing" in err
    assert runner.main([str(path), "--only", "05"]) == runner.EXIT_CONFIG
    assert "Run notebook 04 first" in capsys.readouterr().err
    assert not (results / "fresh" / "notebooks").exists()  # nothing ran
    assert runner.main([str(path), "--only", "05", "--dry-run"]) == 0
    assert "note: notebook 05_language_bias reads notebook 04's evaluation" in capsys.readouterr().out


def _mono_seeds_with_seed_0_trained(tmp_path, results, name: str, seeds: str) -> Path:
    """A profile training mono at 2 layers for ``seeds`` (e.g. "0, 1"), whose seed-0 run folder is finished."""
    text = ("common: {max_items: 5, num_layers: 2}\nnotebooks:\n  03_training:\n"
            f"    sweep: {{strategy: [mono], seed: [{seeds}]}}\n")
    path = _profile(tmp_path, text, name=name)
    done = results / name / "models" / "mono_s0_L2"
    (done / "model").mkdir(parents=True)
    (done / "train_config.json").write_text("{}")
    return path


def test_notebook_06_needs_every_trained_seed(tmp_path, results, capsys):
    path = _mono_seeds_with_seed_0_trained(tmp_path, results, "seeds", "0, 1")
    assert runner.main([str(path), "--only", "06"]) == runner.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "notebook 06_inference_efficiency needs the trained models of notebook 03" in err
    assert "1 are not in" in err and "mono_s1_L2" in err


def test_dry_run_shows_what_is_done(tmp_path, results, capsys):
    """A long profile is completed over several invocations: the dry run says which runs are trained,
    which resume from a checkpoint, and when every other notebook last finished."""
    import torch

    path = _mono_seeds_with_seed_0_trained(tmp_path, results, "progress", "0, 1, 2")
    ckpt = results / "progress" / "models" / "mono_s1_L2" / "checkpoint"
    ckpt.mkdir(parents=True)
    torch.save({"step": 40}, ckpt / "state.pt")
    (ckpt / "train_config.json").write_text('{"steps": 120}')
    (results / "progress" / "run_times.csv").write_text(
        "finished_utc,notebook,run,seconds,cpu_count,cpu_model,precision\n"
        "2026-12-02T09:46:23+00:00,01_data_preparation,01_data_preparation,39.0,2,AMD EPYC,bf16\n")
    assert runner.main([str(path), "--dry-run"]) == 0
    out = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert out["01_data_preparation"].endswith("[last finished 2026-12-02T09:46:23+00:00 (39.0 s)]")
    assert out["03_training__strategy-mono_seed-0"].endswith("[trained]")
    assert out["03_training__strategy-mono_seed-1"].endswith("[checkpoint at step 40 of 120: resumes there]")
    assert out["03_training__strategy-mono_seed-2"].endswith("[to train]")
    assert out["04_evaluation"].endswith("[not run yet]")
    assert "1 of 3 training runs trained" in out["notebook 03"]


def test_runs_trained_on_another_machine_count_as_trained_but_notebook_06_needs_weights(tmp_path, results, capsys,
                                                                                         monkeypatch):
    """A later session on a new machine has the runs' records and results from git, not their weights: 04
    and 05 go on, 03 trains nothing, and notebook 06 (which encodes) names the runs and the fix."""
    path = _mono_seeds_with_seed_0_trained(tmp_path, results, "carried", "0, 1")
    elsewhere = results / "carried" / "models" / "mono_s1_L2"
    elsewhere.mkdir(parents=True)
    (elsewhere / "train_config.json").write_text("{}")
    (elsewhere / "record.json").write_text('{"kept": {"fingerprint": "f"}, "last": {"same_as_kept": true}}')
    assert runner.main([str(path), "--dry-run"]) == 0
    out = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert out["03_training__strategy-mono_seed-0"].endswith("[trained]")
    assert out["03_training__strategy-mono_seed-1"].endswith("[trained elsewhere (record and results here, weights not)]")
    assert "2 of 2 training runs trained" in out["notebook 03"] and "(1 of them elsewhere" in out["notebook 03"]
    assert runner.main([str(path), "--only", "06"]) == runner.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "the weights of 1 finished run(s) are not on this machine (mono_s1_L2)" in err
    assert "python -m lib.training restore carried mono_s1_L2" in err  # the fix, as a command
    # measured in the session that had the weights: not run again, said so, nothing fails
    (results / "carried" / "efficiency.csv").write_text("model,dataset,value\nzero-shot_L2,d,1\nmono_s0_L2,d,1\n"
                                                        "mono_s1_L2,d,1\n")
    ran = []
    monkeypatch.setattr(runner, "execute", lambda name, runs, **kw: ran.extend(r.name for r in runs) or 0)
    assert runner.main([str(path), "--only", "06"]) == 0
    assert ran == [] and "is not run again" in capsys.readouterr().out


def test_finished_training_runs_keep_their_executed_notebooks(tmp_path, results, monkeypatch, capsys):
    """A run trained, evaluated and executed in an earlier invocation is not executed again (that would only
    reuse it and replace the notebook showing its training), unless its parameters changed or --rerun-finished."""
    path = _mono_seeds_with_seed_0_trained(tmp_path, results, "kept", "0, 1")
    run0 = next(r for r in config.plan_runs(config.load_profile(str(path))) if r.name.endswith("seed-0"))
    notebooks = results / "kept" / "notebooks"
    notebooks.mkdir(parents=True)
    executed = notebooks / f"{run0.name}.ipynb"
    executed.write_text(json.dumps({"metadata": {"papermill": {"parameters": dict(run0.parameters)}}}))
    ran = []
    monkeypatch.setattr(runner, "execute", lambda name, runs, **kw: ran.extend(r.name for r in runs) or 0)
    assert runner.main([str(path), "--only", "03"]) == 0  # no run_times row: it never ran to the end
    assert ran == [run0.name, run0.name.replace("seed-0", "seed-1")]
    (results / "kept" / "run_times.csv").write_text(f"finished_utc,notebook,run,seconds\nt,03_training,{run0.name},9\n")
    ran.clear()
    assert runner.main([str(path), "--only", "03"]) == 0
    assert ran == [run0.name.replace("seed-0", "seed-1")]
    assert "1 notebook-03 run(s) already trained and evaluated" in capsys.readouterr().out
    ran.clear()
    assert runner.main([str(path), "--only", "03", "--rerun-finished"]) == 0
    assert len(ran) == 2
    executed.write_text(json.dumps({"metadata": {"papermill": {"parameters": {**run0.parameters, "steps": 7}}}}))
    ran.clear()
    assert runner.main([str(path), "--only", "03"]) == 0  # other parameters: executed again
    assert len(ran) == 2


def test_allow_missing_runs_anyway(tmp_path, results, monkeypatch):
    ran = []
    monkeypatch.setattr(runner, "execute", lambda name, runs, **kw: ran.extend(r.name for r in runs) or 0)
    path = _profile(tmp_path, "common: {max_items: 5}\n", name="fresh2")
    assert runner.main([str(path), "--only", "04", "--allow-missing"]) == 0
    assert ran == ["04_evaluation"]
    assert runner.main([str(path), "--only", "03", "04"]) == 0  # 03 first in the same run: fine


# --------------------------------------------------------------------------
# Ctrl-C, disk and permission errors: one line, no traceback


def test_ctrl_c_during_training_says_the_checkpoint_step_and_exits_130(tmp_path, results, monkeypatch, capsys):
    import papermill
    import torch

    path = _profile(tmp_path, "notebooks:\n  03_training: {steps: 6, warmup_steps: 2, sweep: {strategy: [mono]}}\n", name="cc")
    run = next(r for r in config.plan_runs(config.load_profile(str(path))) if r.notebook.stem.startswith("03"))
    ckpt = runner.train_dir("cc", run) / "checkpoint"
    ckpt.mkdir(parents=True)
    torch.save({"step": 3}, ckpt / "state.pt")
    (ckpt / "train_config.json").write_text(json.dumps({"steps": 6}))

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    assert runner.main([str(path), "--only", "03"]) == runner.EXIT_INTERRUPTED
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("interrupted in 03_training__strategy-mono (notebook 1 of 1")
    assert "checkpoint at step 3 of 6" in err and "rerun the same command to resume" in err
    assert not (results / "cc" / ".run.lock").read_text()  # released


@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, "No space left on device", "/r/x/metrics.csv"), r"no space left on the disk holding"),
    (PermissionError(errno.EACCES, "Permission denied", "/r/x"), r"is not writable by this user.*chmod"),
])
def test_disk_and_permission_errors_name_the_folder_and_the_fix(tmp_path, results, monkeypatch, capsys, error,
                                                                  message):
    def fail(*a, **kw):
        raise error

    monkeypatch.setattr(runner, "execute", fail)
    path = _profile(tmp_path, "common: {max_items: 5}\n", name="disk")
    assert runner.main([str(path), "--only", "01"]) == runner.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err) and "/r/x" in err


def test_unwritable_results_folder_is_reported_before_anything_runs(tmp_path, results, monkeypatch, capsys):
    real_open = open

    def deny(file, *a, **kw):
        if str(file).endswith(".run.lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr("builtins.open", deny)
    path = _profile(tmp_path, "common: {max_items: 5}\n", name="ro")
    assert runner.main([str(path), "--only", "01"]) == runner.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"{results / 'ro'} is not writable by this user" in err


def test_failed_cell_summary_keeps_the_whole_message():
    exc = RuntimeError("\n" + "-" * 75 + "\nException encountered at \"In [3]\":\n\x1b[0;31m---\x1b[0m\n"
                       "Cell In[3], line 1\n\x1b[0;31mDataError\x1b[0m: /d/x.json is corrupt or truncated: its "
                       "sha256 is abc, while /d/SHA256SUMS lists def for it. Re-copy the file\n")
    summary = runner._error_summary(exc)
    assert summary.startswith("DataError: /d/x.json") and summary.endswith("Re-copy the file")
    assert "\x1b" not in summary
    assert "no space left" in runner._hint("OSError: [Errno 28] No space left on device: '/r/p/a.csv'")


# --------------------------------------------------------------------------
# One run per results folder


HOLD = """
import sys, time
from lib.integrity import RunLock
lock = RunLock(sys.argv[1], command="holder").acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_stops_at_once_naming_the_first_and_takes_over_after_kill9(tmp_path, results, capsys):
    path = _profile(tmp_path, "common: {max_items: 5}\n", name="busy")
    folder = results / "busy"
    holder = _holder(folder)
    try:
        t0 = time.perf_counter()
        assert runner.main([str(path), "--only", "01"]) == runner.EXIT_LOCKED
        assert time.perf_counter() - t0 < 5
        err = capsys.readouterr().err
        assert f"{folder} is in use by another run: pid {holder.pid}" in err and "started 20" in err
        assert "(holder)" in err
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(folder).acquire()  # the dead holder's lock file is still there: taken over
    try:
        assert lock.stale_holder["pid"] == holder.pid
        assert "whose process is gone" in integrity.describe_stale(lock.stale_holder)
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            RunLock(folder).acquire()
    finally:
        lock.release()


def test_stale_temp_folders_are_cleaned_and_nothing_else(tmp_path):
    (tmp_path / ".metrics.csv.ab12cd_9").mkdir()
    (tmp_path / ".metrics.csv.ab12cd_9" / "metrics.csv").write_text("half")
    (tmp_path / "models" / ".checkpoint.zz99yy88").mkdir(parents=True)
    (tmp_path / "models" / ".keep.abcdefgh").mkdir()
    (tmp_path / "models" / ".keep.abcdefgh" / "other").write_text("not a temp of ours")
    (tmp_path / ".git").mkdir()
    (tmp_path / "metrics.csv").write_text("model\n")
    removed = integrity.clean_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [".checkpoint.zz99yy88", ".metrics.csv.ab12cd_9"]
    assert (tmp_path / "models" / ".keep.abcdefgh" / "other").is_file() and (tmp_path / ".git").is_dir()
    assert (tmp_path / "metrics.csv").read_text() == "model\n"


# --------------------------------------------------------------------------
# SIGKILL during writes, two writers, a full disk


KILL_DURING_CSV = """
import os, signal, sys
import pandas as pd
from lib.results import upsert_csv
real = pd.DataFrame.to_csv
def half_then_die(self, path, *a, **kw):
    text = real(self, None, *a, **kw)
    with open(path, "w") as fh:
        fh.write(text[: len(text) // 2]); fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
pd.DataFrame.to_csv = half_then_die
upsert_csv(sys.argv[1], pd.DataFrame({"model": ["new"], "value": [2.0]}), keys=["model"])
"""


def test_sigkill_during_a_results_write_leaves_the_old_file_and_a_cleanable_temp(tmp_path):
    target = tmp_path / "metrics.csv"
    upsert_csv(target, pd.DataFrame({"model": ["old"], "value": [1.0]}), keys=["model"])
    before = target.read_bytes()
    proc = _py(KILL_DURING_CSV.replace("sys.argv[1]", repr(str(target))))
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == before  # the file in use is the complete old one
    leftovers = integrity.stale_temps(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".metrics.csv.")
    integrity.clean_stale_temps(tmp_path)
    merged = upsert_csv(target, pd.DataFrame({"model": ["new"], "value": [2.0]}), keys=["model"])
    assert sorted(merged.model) == ["new", "old"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["metrics.csv"]


KILL_DURING_CHECKPOINT = """
import os, signal, sys
import torch
from lib import training
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder
torch.set_num_threads(1)
calls = []
real = torch.save
def save(obj, f, *a, **kw):
    calls.append(1)
    if len(calls) == 2:  # the second checkpoint: half a file, then the process dies
        real(obj, f, *a, **kw)
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *a, **kw)
training.torch.save = save
cfg = training.TrainConfig(backbone="tiny", strategy="hybrid", steps=6, batch_size=4, warmup_steps=2,
                           eval_every=3, lr=1e-3, bf16=False, val_pairs=16)
training.train(cfg, sys.argv[1], pairs=make_pairs(), encoder=build_tiny_encoder(0), progress=False,
               checkpoint_every=2)
"""


def test_sigkill_during_a_checkpoint_keeps_the_previous_one_and_resumes(tmp_path):
    import torch

    from lib.training import TrainConfig, train
    from test_sampling import make_pairs
    from tiny_model import build_tiny_encoder

    out = tmp_path / "run"
    proc = _py(KILL_DURING_CHECKPOINT.replace("sys.argv[1]", repr(str(out))), timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = torch.load(out / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2  # the complete earlier checkpoint, not the half-written one
    assert len(integrity.stale_temps(out)) == 1
    integrity.clean_stale_temps(out)
    steps = []
    cfg = TrainConfig(backbone="tiny", strategy="hybrid", steps=6, batch_size=4, warmup_steps=2, eval_every=3,
                      lr=1e-3, bf16=False, val_pairs=16)
    train(cfg, out, pairs=make_pairs(), encoder=build_tiny_encoder(0), progress=False, checkpoint_every=2,
          callback=lambda step, row: steps.append(step))
    assert steps == [3, 4, 5, 6]
    assert (out / "train_config.json").is_file() and not integrity.stale_temps(out)


WRITER = """
import sys
import pandas as pd
from lib.results import upsert_csv
for k in range(25):
    upsert_csv(sys.argv[1], pd.DataFrame({"model": [f"{sys.argv[2]}{k}"], "value": [k]}), keys=["model"],
               sort_by=["model"])
"""


def test_two_concurrent_writers_lose_no_rows(tmp_path):
    target = tmp_path / "metrics.csv"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), name], env=ENV) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    table = pd.read_csv(target)
    assert sorted(table.model) == sorted([f"a{k}" for k in range(25)] + [f"b{k}" for k in range(25)])
    assert not integrity.stale_temps(tmp_path)


def test_full_disk_during_a_results_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    upsert_csv(target, pd.DataFrame({"model": ["old"], "value": [1.0]}), keys=["model"])
    before = target.read_bytes()

    def full(self, path, *a, **kw):
        with open(path, "w") as fh:
            fh.write("model,val")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OSError) as info:
        upsert_csv(target, pd.DataFrame({"model": ["new"], "value": [2.0]}), keys=["model"])
    assert info.value.errno == errno.ENOSPC
    assert "no space left on the disk holding" in integrity.describe_os_error(info.value)
    assert target.read_bytes() == before
    assert not integrity.stale_temps(tmp_path)  # atomic_write removed its temporary folder


def test_preflight_lists_every_missing_or_changed_file_of_the_needed_datasets(training_root):
    assert data_files.preflight(["mlqa_test", "tydiqa"]) == []
    (training_root / "tydiqa_goldp" / "train_partial" / "tydiqa.goldp.ko.train.json").unlink()
    es = training_root / "mlqa" / "test_partial" / "test-context-de-question-es.json"
    es.write_bytes(es.read_bytes()[:-5])
    problems = data_files.preflight(["mlqa_test", "tydiqa", "tydiqa"])
    assert len(problems) == 2
    assert "test-context-de-question-es.json is corrupt or truncated" in problems[0]
    assert "tydiqa.goldp.ko.train.json is listed in" in problems[1] and "but missing" in problems[1]
    assert data_files.preflight(["xquad_r"]) == [f"xquad_r: missing folder {training_root / 'xquad_r'}; copy it from the "
                                           "data mirror or point HBT_DATA_DIR to a complete copy"]


def test_digest_cache_forgets_files_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "PRUNE_AT", 3)
    files = []
    for k in range(4):
        files.append(tmp_path / f"f{k}")
        files[-1].write_text(str(k))
        integrity.file_sha256(files[-1])
    files[0].unlink()
    files[1].unlink()
    integrity.file_sha256(tmp_path / "f3")  # cached: nothing stored
    (tmp_path / "f4").write_text("4")
    integrity.file_sha256(tmp_path / "f4")
    cached = json.loads(integrity._digest_cache_path().read_text())
    assert sorted(Path(k).name for k in cached) == ["f2", "f3", "f4"]
    assert cached[str((tmp_path / "f4").resolve())][2] == hashlib.sha256(b"4").hexdigest()


def test_a_slow_kernel_start_is_waited_for(tmp_path, results, monkeypatch):
    """A busy machine may take more than papermill's 60 s to start a kernel: the runner waits longer."""
    import papermill

    path = _profile(tmp_path, "notebooks:\n  01_data_preparation: {max_items: 3}\n", name="slow")
    seen = {}

    def record(*a, **kw):
        seen.update(kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", record)
    runner.main([str(path), "--only", "01", "--allow-missing"])
    assert seen["start_timeout"] == runner.KERNEL_START_TIMEOUT >= 300
