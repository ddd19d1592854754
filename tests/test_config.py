"""Profiles, the notebook runner's plan, and atomic writes."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lib import config
from lib.config import load_profile, notebook_parameters, plan_runs
from lib.errors import ConfigError, DataError
from lib.paths import atomic_write


def _notebook(path: Path, params_source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, nbformat.v4.new_code_cell("print(profile)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def notebooks(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    a = _notebook(folder / "01_alpha.ipynb",
                  'profile: str = "default"  # where\nmax_items: int = 0  # cap\nbackbone: str = "embedded"\n')
    b = _notebook(folder / "02_beta.ipynb",
                  'profile: str = "default"\nstrategy: str = "mono"\nseed: int = 0\n'
                  'alpha: float = 0.5\nlr: float = 3e-5\nfreeze: bool = True\n')
    return [a, b]


def _profile(tmp_path, text: str) -> config.Profile:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_profile(str(path))


def test_notebook_parameters_reads_types_and_defaults(notebooks):
    params = notebook_parameters(notebooks[1])
    assert params["seed"] == {"type": "int", "default": 0}
    assert params["lr"]["type"] == "float" and params["lr"]["default"] == 3e-5
    assert params["freeze"]["default"] is True


def test_plan_injects_profile_and_common_only_where_declared(tmp_path, notebooks):
    prof = _profile(tmp_path, "common: {max_items: 5}\nnotebooks:\n  02_beta: {seed: 3}\n")
    runs = plan_runs(prof, notebooks)
    assert [r.name for r in runs] == ["01_alpha", "02_beta"]
    assert runs[0].parameters == {"max_items": 5, "profile": "p"}
    assert runs[1].parameters == {"seed": 3, "profile": "p"}


def test_sweep_union_of_products_without_duplicates(tmp_path, notebooks):
    prof = _profile(tmp_path, """
notebooks:
  02_beta:
    sweep:
      - {strategy: [mono, cross], seed: [0, 1]}
      - {strategy: [hybrid], alpha: [0.4, 0.6], seed: [0]}
      - {strategy: [mono], seed: [0]}
""")
    runs = [r for r in plan_runs(prof, notebooks) if r.notebook.stem == "02_beta"]
    assert len(runs) == 6
    assert {r.tag for r in runs} >= {"strategy-mono_seed-0", "strategy-hybrid_alpha-0.4_seed-0"}
    assert len({r.name for r in runs}) == 6


@pytest.mark.parametrize("text, culprit", [
    ("notebooks:\n  02_beta: {sed: 3}\n", "'sed' is not a parameter of notebook 02_beta"),
    ("notebooks:\n  02_beta: {sweep: {strat: [mono]}}\n", "'strat' is not a parameter"),
    ("common: {max_item: 3}\n", "common key 'max_item'"),
    ("notebooks:\n  09_gamma: {}\n", "unknown notebook"),
    ("notebook: {}\n", "unknown top-level key"),
    ("notebooks:\n  02_beta: {seed: '3'}\n", "'seed' must be int"),
    ("notebooks:\n  02_beta: {freeze: 1}\n", "'freeze' must be bool"),
    ("notebooks:\n  02_beta: {seed: true}\n", "'seed' must be int"),
    ("notebooks:\n  02_beta: {sweep: {seed: 3}}\n", "non-empty list"),
])
def test_bad_profiles_name_the_culprit(tmp_path, notebooks, text, culprit):
    with pytest.raises(ConfigError, match=culprit.replace("(", r"\(")):
        plan_runs(_profile(tmp_path, text), notebooks)


def test_float_parameter_accepts_int(tmp_path, notebooks):
    runs = plan_runs(_profile(tmp_path, "notebooks:\n  02_beta: {lr: 1}\n"), notebooks)
    assert runs[1].parameters["lr"] == 1


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="Known profiles: .*smoke"):
        load_profile("no-such-profile")


def test_shipped_profiles_match_the_notebooks():
    """Every profile in configs/ is valid against the notebooks in notebooks/."""
    if not config.list_notebooks():
        pytest.skip("no notebooks yet")
    for path in sorted(config.CONFIG_DIR.glob("*.yaml")):
        runs = plan_runs(load_profile(str(path)))
        assert runs, path


def test_prepare_injects_parameters(tmp_path, notebooks):
    from lib.runner import prepare

    prof = _profile(tmp_path, "notebooks:\n  02_beta: {seed: 7}\n")
    written = prepare(plan_runs(prof, notebooks), tmp_path / "out")
    nb = json.loads(written[1].read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "seed = 7" in "".join(injected[0]["source"])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]
    with atomic_write(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_run_times_record_the_machine(tmp_path, monkeypatch):
    """Every notebook time carries the CPU model and precision; an older file gains the columns."""
    import pandas as pd

    from lib import machine
    from lib.config import NotebookRun
    from lib.runner import TIME_COLUMNS, _log_time

    monkeypatch.setenv("HBT_BF16", "0")
    path = tmp_path / "run_times.csv"
    path.write_text("finished_utc,notebook,run,seconds,cpu_count\n2026-11-22T03:10:32+00:00,01_a,01_a,31.1,2\n")
    run = NotebookRun(notebook=tmp_path / "02_b.ipynb", parameters={})
    _log_time(path, run, 12.34)
    frame = pd.read_csv(path)
    assert list(frame.columns) == TIME_COLUMNS and len(frame) == 2
    assert frame["cpu_model"].isna().iloc[0] and frame["cpu_model"].iloc[1] == machine.cpu_model()
    assert frame["precision"].tolist()[1] == "fp32" and frame["seconds"].iloc[1] == 12.3
    path.write_text("when,what\n1,2\n")
    with pytest.raises(DataError, match="run_times.csv: header"):
        _log_time(path, run, 1.0)


def test_machine_precision_follows_the_override(monkeypatch):
    from lib import machine

    monkeypatch.setenv("HBT_BF16", "1")
    assert machine.describe()["precision"] == "bf16"
    monkeypatch.setenv("HBT_BF16", "0")
    assert machine.precision() == "fp32"
    assert machine.cpu_model()


def test_a_profile_fixes_its_precision(tmp_path, monkeypatch):
    from lib.config import apply_precision

    monkeypatch.delenv("HBT_BF16", raising=False)
    prof = _profile(tmp_path, "precision: fp32\nnotebooks:\n  02_beta: {seed: 7}\n")
    assert prof.precision == "fp32"
    assert "HBT_BF16=0" in apply_precision(prof)
    import os

    assert os.environ["HBT_BF16"] == "0"
    monkeypatch.setenv("HBT_BF16", "1")
    with pytest.raises(ConfigError, match="precision: fp32, but HBT_BF16=1 is set"):
        apply_precision(prof)
    assert apply_precision(_profile(tmp_path, "notebooks:\n  02_beta: {seed: 7}\n")) is None  # auto: untouched
    with pytest.raises(ConfigError, match=r"precision: 'fp16'; use one of \['auto', 'bf16', 'fp32'\]"):
        _profile(tmp_path, "precision: fp16\nnotebooks:\n  02_beta: {seed: 7}\n")
