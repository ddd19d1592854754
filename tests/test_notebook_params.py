"""A notebook run by hand on a profile (lib.notebook.apply_profile), and the errors that name the parameter."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lib import results as results_store
from lib import notebook as nbp
from lib.config import list_notebooks, notebook_parameters
from lib.errors import ConfigError

PARAMS = '''profile: str = "default"  # results/<profile>/
max_items: int = 0  # items
strategy: str = "hybrid"  # mono | cross | hybrid
alpha: float = 0.5  # share of mono batches
steps: int = 120  # optimizer steps
label: str = "x"  # not in the profile'''


@pytest.fixture
def demo(tmp_path):
    """A notebook folder with one notebook and a profile that sets some of its parameters and sweeps two."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    profile = tmp_path / "demo.yaml"
    profile.write_text("description: test\ncommon:\n  max_items: 30\nnotebooks:\n  01_demo:\n    steps: 6\n"
                       "    sweep:\n      strategy: [mono, hybrid]\n      alpha: [0.5]\n")
    return path, profile


def _ns(path: Path, **overrides) -> dict:
    ns = {k: v["default"] for k, v in notebook_parameters(path).items()}
    ns.update(overrides)
    return ns


def test_unchanged_parameters_come_from_the_profile(demo, capsys):
    path, profile = demo
    ns = _ns(path, profile=str(profile))
    frame = nbp.apply_profile(ns, path, mode=nbp.RunMode("interactive")).set_index("parameter")
    assert ns["profile"] == "demo"  # a YAML path names results/<stem>/, as the runner does
    assert (ns["max_items"], ns["steps"], ns["label"]) == (30, 6, "x")
    assert ns["strategy"] == "mono" and ns["alpha"] == 0.5  # sweep: the first combination
    assert frame.loc["max_items", "source"] == "profile"
    assert frame.loc["strategy", "source"] == "profile (sweep: first of 2)"
    assert frame.loc["label", "source"] == "default"
    out = capsys.readouterr().out
    assert "first (strategy-mono_alpha-0.5)" in out and "max_items=30" in out


def test_values_set_by_hand_are_kept(demo, capsys):
    path, profile = demo
    ns = _ns(path, profile=str(profile), max_items=5, strategy="cross")
    frame = nbp.apply_profile(ns, path, mode=nbp.RunMode("interactive")).set_index("parameter")
    assert (ns["max_items"], ns["strategy"], ns["steps"]) == (5, "cross", 6)
    assert frame.loc["max_items", "source"] == "notebook"
    assert "max_items=5 (profile: 30)" in capsys.readouterr().out


def test_defaults_are_the_committed_ones_not_the_autosaved_file(demo):
    """JupyterLab autosaves an edited parameters cell; the edit must still count as set by hand."""
    path, profile = demo
    committed = notebook_parameters(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("steps: int = 120", "steps: int = 50")
    nbformat.write(nb, path)
    ns = _ns(path, profile=str(profile))
    assert ns["steps"] == 50
    nbp.apply_profile(ns, path, mode=nbp.RunMode("interactive"), defaults=committed)
    assert ns["steps"] == 50
    nbp.apply_profile(ns := _ns(path, profile=str(profile)), path, mode=nbp.RunMode("interactive"))
    assert ns["steps"] == 6  # outside git the file is the reference: 50 is its default there


def test_committed_defaults_read_git_head():
    stem = "04_evaluation"
    assert nbp.committed_defaults(stem)["n_bootstrap"]["default"] == 2000


def test_papermill_and_nbval_runs_change_nothing(demo, capsys):
    path, profile = demo
    ns = _ns(path, profile="demo", strategy="hybrid")  # a sweep value equal to the default, injected
    frame = nbp.apply_profile(ns, path, mode=nbp.RunMode("papermill", frozenset({"profile", "strategy"})))
    assert (ns["strategy"], ns["max_items"], ns["steps"]) == ("hybrid", 0, 120)
    assert set(frame.loc[frame.source == "papermill", "parameter"]) == {"profile", "strategy"}
    assert nbp.run_by_executor()
    ns = _ns(path, profile="demo")
    nbp.apply_profile(ns, path, mode=nbp.RunMode("no-history"))
    assert ns["max_items"] == 0
    nbp.apply_profile(_ns(path, profile=str(profile)), path, mode=nbp.RunMode("interactive"))
    assert not nbp.run_by_executor()


def test_run_mode_from_input_history():
    params = PARAMS
    injected = '# Parameters\nprofile = "smoke"\nmax_items = 30\n'
    apply = "apply_profile(globals(), 'x')"
    assert nbp.run_mode({}).kind == "interactive"
    assert nbp.run_mode({"_ih": [""]}).kind == "no-history"
    assert nbp.run_mode({"_ih": ["", "import x", params, apply]}).kind == "interactive"
    mode = nbp.run_mode({"_ih": ["", "import x", params, injected, apply]})
    assert mode.kind == "papermill" and mode.injected == {"profile", "max_items"}
    assert nbp.injected_names(params) == frozenset()


def test_errors_name_the_parameter(demo):
    path, profile = demo
    with pytest.raises(ConfigError, match="parameter 'profile'"):
        nbp.apply_profile(_ns(path, profile="no_such_profile"), path, mode=nbp.RunMode("interactive"))
    with pytest.raises(ConfigError, match="parameter 'max_items' must be int"):
        nbp.apply_profile(_ns(path, profile=str(profile), max_items="5"), path, mode=nbp.RunMode("interactive"))
    ns = _ns(path, profile=str(profile))
    del ns["steps"]
    with pytest.raises(ConfigError, match=r"\['steps'\] are not defined; run the parameters cell"):
        nbp.apply_profile(ns, path, mode=nbp.RunMode("interactive"))


def test_max_items_mismatch_names_the_parameter(tmp_path, monkeypatch):
    from lib import evaluation

    monkeypatch.setattr(evaluation, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(results_store, "results_dir", lambda profile: tmp_path / profile)  # the evaluation manifest
    (tmp_path / "p").mkdir()
    entry = {"max_items": 30, "model_fingerprint": "m", "data_fingerprint": "d"}
    (tmp_path / "p" / "evaluations.json").write_text(json.dumps(
        {"profile": "p", "entries": {"zero-shot__xquad_r": entry}}))
    with pytest.raises(ConfigError, match=r"parameter max_items=0 .* Set the notebook parameter max_items=30"):
        evaluation.check_max_items("p", 0, ["xquad_r"])
    assert len(evaluation.check_max_items("p", 30, ["xquad_r"])) == 1


@pytest.mark.parametrize("path", list_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_applies_its_profile_after_the_parameters_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    idx = [i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(idx) == 1
    after = "".join(nb["cells"][idx[0] + 1]["source"])
    assert f'apply_profile(globals(), "{path.stem}")' in after
    assert "profile" in notebook_parameters(path)


def test_in_a_real_kernel(demo, tmp_path):
    """Executed by a kernel that keeps history (JupyterLab, nbconvert): filled; after papermill's cell: kept."""
    from nbclient import NotebookClient

    path, profile = demo
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace('"default"', repr(str(profile)))
    apply = nbformat.v4.new_code_cell(f"from lib.notebook import apply_profile, run_by_executor\n"
                                      f"apply_profile(globals(), {str(path)!r})\n"
                                      "print('RESULT', profile, max_items, strategy, steps, run_by_executor())")
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "demo"\nstrategy = "hybrid"\n')
    outputs = {}
    for name, cells in (("hand", [nb.cells[0], apply]), ("papermill", [nb.cells[0], injected, apply])):
        run = nbformat.v4.new_notebook(cells=[nbformat.from_dict(json.loads(json.dumps(c))) for c in cells])
        NotebookClient(run, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(__file__).resolve().parents[1])}}).execute()
        text = "".join(o.get("text", "") for o in run.cells[-1].outputs)
        outputs[name] = next(line for line in text.splitlines() if line.startswith("RESULT"))
    assert outputs["hand"] == "RESULT demo 30 mono 6 False"
    assert outputs["papermill"] == "RESULT demo 0 hybrid 120 True"
