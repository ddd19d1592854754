"""The README's generated results blocks agree with results/default; a hand-edited number fails."""
from __future__ import annotations

import re

import pytest

from lib import readme
from lib.errors import DataError
from lib.paths import results_dir

FOLDER = results_dir("default")


def test_readme_blocks_match_the_results_files():
    text = readme.README.read_text(encoding="utf-8")
    _, changed = readme.render(text, FOLDER)
    assert changed == [], f"run `python -m lib.readme`: blocks {changed} differ from results/default"


@pytest.mark.parametrize("block", sorted(readme.BLOCKS))
def test_a_number_changed_by_hand_is_caught(block):
    text = readme.README.read_text(encoding="utf-8")
    start = text.index(f"<!-- generated: {block} ")
    end = text.index(f"<!-- end generated: {block} -->")
    body = text[start:end]
    m = re.search(r"\d\.\d", body.split("\n", 1)[1])
    assert m, f"block {block} has no number"
    i = start + len(body.split("\n", 1)[0]) + 1 + m.start() + 2  # the digit after the point
    edited = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
    _, changed = readme.render(edited, FOLDER)
    assert changed == [block]


def test_missing_block_is_an_error():
    text = readme.README.read_text(encoding="utf-8")
    cut = re.sub(r"<!-- generated: results-table .*?<!-- end generated: results-table -->", "", text, flags=re.S)
    with pytest.raises(DataError, match="results-table"):
        readme.render(cut, FOLDER)


def test_question_2_blocks_from_notebook_07_tables(tmp_path):
    """The size-axis table and answer are written from 07_mlqa_estimates.csv / 07_mlqa_gaps.csv."""
    import pandas as pd

    est, gaps = [], []
    for layers, backbone, params in ((3, "distilled-L3", 5.3e6), (12, "embedded", 21.3e6)):
        for strategy, value in (("zero-shot", 0.44), ("mono", 0.50), ("cross", 0.51), ("hybrid", 0.515)):
            v = value + (0.3 if layers == 12 else 0)
            est.append({"model": f"{strategy}_{layers}", "group": "all", "estimate": v, "low": v - 0.01,
                        "high": v + 0.01, "n_seeds": 1 if strategy == "zero-shot" else 3, "strategy": strategy,
                        "layers": layers, "backbone": backbone, "non_embedding_params": params})
        for other, d, outcome in (("mono", 0.015, "better"), ("cross", 0.005, "equivalent")):
            gaps.append({"model_a": f"hybrid_{layers}", "model_b": f"{other}_{layers}", "group": "all",
                         "estimate": d, "low": d - 0.004, "high": d + 0.004, "p_value": 0.01, "outcome": outcome,
                         "strategy_b": other, "layers": layers})
    pd.DataFrame(est).to_csv(tmp_path / "07_mlqa_estimates.csv", index=False)
    pd.DataFrame(gaps).to_csv(tmp_path / "07_mlqa_gaps.csv", index=False)
    table = readme.scaling_table(tmp_path).splitlines()
    assert len(table) == 4 and table[2].startswith("| 3 | `distilled-L3` | 5.3M | 0.440 [0.430, 0.450] |")
    assert "0.515 [0.505, 0.525] (3 seeds)" in table[2] and "+0.015 [+0.011, +0.019] better" in table[2]
    assert "+0.005 [+0.001, +0.009] equivalent" in table[3]
    answer = readme.scaling_answer(tmp_path)
    assert "hybrid - mono = 3L +0.015 [+0.011, +0.019] better, 12L +0.015" in answer
    assert "of 2 sizes hybrid is better at 2, equivalent at 0" in answer
