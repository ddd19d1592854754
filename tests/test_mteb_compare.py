"""compare_with_mteb (the hub cross-check of the paper profile) with mteb's side replaced by known numbers."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import mlqa_retrieval as MR
from lib import mteb_adapter as MA
from lib import mteb_eval as ME
from lib.errors import StudyError
from test_mteb_eval import synthetic_subsets


def fake_mteb(shift: dict[str, float], decimals: int | None = None):
    """A run_mteb stand-in that returns our own local scores, moved by ``shift`` per subset (and rounded to
    ``decimals``, as mteb reports them)."""
    calls = []

    def run(encoder, tasks, out_dir=None, **kw):
        calls.append((list(tasks), kw.get("eval_splits")))
        encoder = encoder.encoder if isinstance(encoder, MA.MtebEncoder) else encoder  # mteb_agreement wraps it
        local = MR.evaluate_mlqa_retrieval(encoder, synthetic_subsets(3), max_items=3, max_length=32).subsets
        return pd.DataFrame({"task": "MLQARetrieval", "split": MR.SPLIT, "hf_subset": local["subset"],
                             "metric": MR.MAIN_METRIC,
                             "value": (local[MR.MAIN_METRIC] + local["subset"].map(shift).fillna(0.0))
                             .round(decimals if decimals is not None else 15)})
    return run, calls


def test_agreement_is_joined_by_subset_and_checked(tiny_encoder, monkeypatch):
    some = MR.mteb_subset_name("de", "en")
    run, calls = fake_mteb({some: 0.004})
    monkeypatch.setattr(ME, "run_mteb", run)
    table = ME.compare_with_mteb(tiny_encoder, synthetic_subsets(3), max_length=32, max_items=3)
    assert calls == [(["MLQARetrieval"], [MR.SPLIT])]  # the hub task, validation split
    assert len(table) == 49 and table.attrs["agree"]
    assert table.set_index("subset").loc[some, "abs_diff"] == pytest.approx(0.004)
    assert table.drop(index=table.index[table["subset"] == some])["abs_diff"].max() < 1e-12


def test_disagreement_beyond_the_tolerance_is_an_error_naming_the_subset(tiny_encoder, monkeypatch):
    bad = MR.mteb_subset_name("zh", "hi")
    monkeypatch.setattr(ME, "run_mteb", fake_mteb({bad: 0.05})[0])
    with pytest.raises(StudyError, match=f"disagree: max \\|diff\\| 0.0500.*{bad}"):
        ME.compare_with_mteb(tiny_encoder, synthetic_subsets(3), max_length=32, max_items=3)


def test_a_subset_mteb_did_not_return_is_an_error(tiny_encoder, monkeypatch):
    run = fake_mteb({})[0]
    gone = MR.mteb_subset_name("ar", "vi")
    monkeypatch.setattr(ME, "run_mteb", lambda *a, **k: (lambda t: t[t["hf_subset"] != gone])(run(*a, **k)))
    with pytest.raises(StudyError, match=f"returned no ndcg_at_10 for subsets \\['{gone}'\\]"):
        ME.compare_with_mteb(tiny_encoder, synthetic_subsets(3), max_length=32, max_items=3)


def agreement_with(tiny_encoder, monkeypatch, shift: dict[str, float], tie_tol: float) -> pd.DataFrame:
    """mteb_agreement with mteb's side replaced by the local scores moved by ``shift`` (no mteb needed)."""
    monkeypatch.setattr(ME, "run_mteb", fake_mteb(shift, decimals=5)[0])
    monkeypatch.setattr(ME, "local_mlqa_task", lambda subsets, max_items=0: None)
    return ME.mteb_agreement(tiny_encoder, synthetic_subsets(3), max_items=3, max_length=32, tie_tol=tie_tol)


def test_mteb_agreement_accepts_a_difference_only_where_near_ties_allow_it(tiny_encoder, monkeypatch):
    local = MR.evaluate_mlqa_retrieval(tiny_encoder, synthetic_subsets(3), max_items=3, max_length=32).subsets
    some = local.loc[local[MR.MAIN_METRIC] > 0.6, "subset"].iloc[0]  # room below it within 3 candidates
    # with a tolerance that ties every candidate the range is [relevant last, relevant first]: -0.004 is inside
    table = agreement_with(tiny_encoder, monkeypatch, {some: -0.004}, tie_tol=10.0)
    a, row = table.attrs, table.set_index("subset").loc[some]
    assert (a["n_exact"], a["n_within_ties"], a["agree"]) == (48, 1, True)
    assert row["within_ties"] and row["tie_low"] < row["mteb"] < row["tie_high"] == pytest.approx(1.0)
    # with no near-ties the same difference is a disagreement
    table = agreement_with(tiny_encoder, monkeypatch, {some: -0.004}, tie_tol=0.0)
    a, row = table.attrs, table.set_index("subset").loc[some]
    assert (a["n_exact"], a["n_within_ties"], a["agree"]) == (48, 0, False)
    assert not row["within_ties"] and row["tie_low"] == row["tie_high"] == pytest.approx(row["local"])


def test_mteb_agreement_of_equal_scores_is_exact(tiny_encoder, monkeypatch):
    table = agreement_with(tiny_encoder, monkeypatch, {}, tie_tol=1e-6)
    assert (table.attrs["n_exact"], table.attrs["agree"]) == (49, True) and table["within_ties"].all()
