"""compare_with_mteb (the hub cross-check of the paper profile) with mteb's side replaced by known numbers."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import mlqa_retrieval as MR
from lib import mteb_eval as ME
from lib.errors import StudyError
from test_mteb_eval import synthetic_subsets


def fake_mteb(shift: dict[str, float]):
    """A run_mteb stand-in that returns our own local scores, moved by ``shift`` per subset."""
    calls = []

    def run(encoder, tasks, out_dir=None, **kw):
        calls.append((list(tasks), kw.get("eval_splits")))
        local = MR.evaluate_mlqa_retrieval(encoder, synthetic_subsets(3), max_items=3, max_length=32).subsets
        return pd.DataFrame({"task": "MLQARetrieval", "split": MR.SPLIT, "hf_subset": local["subset"],
                             "metric": MR.MAIN_METRIC,
                             "value": local[MR.MAIN_METRIC] + local["subset"].map(shift).fillna(0.0)})
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
