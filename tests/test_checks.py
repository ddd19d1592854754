"""The notebooks' self-checks find missing, empty, incomplete and contradictory outputs."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import checks
from lib.errors import DataError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "results_dir", lambda profile: tmp_path / profile)
    monkeypatch.setattr(checks, "figures_dir", lambda profile: tmp_path / profile / "figures")
    out = tmp_path / "p"
    (out / "figures").mkdir(parents=True)
    return out


def write_05(folder, nan=False):
    pd.DataFrame({"dataset": ["x", "x"], "arm": ["mono", "hybrid"],
                  "rank_distance": [10.0, float("nan") if nan else 5.0]}).to_csv(folder / "05_bias_summary.csv",
                                                                                  index=False)
    pd.DataFrame({"a": [1]}).to_csv(folder / "05_rank_distance.csv", index=False)
    (folder / "figures" / "05_rank.png").write_bytes(b"png")


def test_complete_outputs_pass(folder):
    write_05(folder)
    assert "all present" in checks.check_notebook("05", "p")


def test_nan_empty_figure_and_missing_file_are_reported(folder):
    write_05(folder, nan=True)
    (folder / "figures" / "05_empty.png").write_bytes(b"")
    found = checks.problems("05", "p")
    assert any("NaN value(s) in column 'rank_distance'" in p for p in found)
    assert any("05_empty.png is empty" in p for p in found)
    (folder / "05_rank_distance.csv").unlink()
    with pytest.raises(DataError, match="05_rank_distance.csv is missing"):
        checks.check_notebook("05", "p")


def test_one_verdict_per_claim(folder):
    pd.DataFrame({"claim": [1, 2, 2], "verdict": ["supported", "flipped", "inconclusive"]}).to_csv(
        folder / "verdicts.csv", index=False)
    found = checks._verdict_problems(folder)
    assert any("exactly one verdict for each of claims 1, 2, 3" in p for p in found)
    assert any("unknown verdict(s) ['flipped']" in p for p in found)


def test_unknown_notebook_is_an_error():
    with pytest.raises(DataError, match="no expectations for notebook '09'"):
        checks.problems("09", "p")


def test_training_check_skips_runs_still_to_resume_but_not_its_own(folder):
    """A sweep's other run, interrupted with only a checkpoint, is not this notebook's problem; its own
    run without a log is."""
    done, pending, broken = (folder / "models" / n for n in ("mono_s0", "cross_s0", "hybrid_s0"))
    for run in (done, pending):
        run.mkdir(parents=True)
    pd.DataFrame({"step": [0, 1, 2], "loss": [None, 0.5, 0.4]}).to_csv(done / "train_log.csv", index=False)
    (pending / "checkpoint").mkdir()
    assert "all present" in checks.check_notebook("03", "p")
    assert "all present" in checks.check_notebook("03", "p", run="mono_s0")
    with pytest.raises(DataError, match="cross_s0: no train_log.csv"):
        checks.check_notebook("03", "p", run="cross_s0")
    broken.mkdir()  # neither a log nor a checkpoint: a run that died before its first checkpoint
    assert any("hybrid_s0: no train_log.csv" in p for p in checks.problems("03", "p"))
