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
