"""The README's benchmark numbers are the ones the kept benchmark outputs hold.

Each entry names a file under ``benchmarks/results/`` and the numbers the
README prints from it, as printed (shares the file holds as fractions are
listed in PERCENT and printed as percentages). A number passes when the
README contains it and the file holds a number that rounds to it at the
printed precision; a
README number edited by hand, or a benchmark file replaced without updating
the README, fails here.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from lib import readme

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"

SOURCES = {
    "bench_peer_amd_epyc_2026-12-02.txt": [
        "0.201", "0.443",  # GEMM peaks
        "222.7", "231.4", "101.0", "183.7", "1.21", "1.26",  # questions
        "109.9", "121.3", "38.9", "75.9", "1.45", "1.60",  # sentences
        "14.07", "2.27", "5.36", "10.02", "1.40",  # training step
        "148.7", "132.4", "174.1", "94.4",  # computed and useful GFLOP/s
    ],
    "train_step_ab_amd_epyc_2026-12-02.txt": ["3.71", "3.14", "1.18", "4,059", "3,410", "3,218"],
    "train_equivalence_amd_epyc_2026-12-02.txt": ["0.032", "0.159", "0.0046", "0.011", "0.018", "345"],
    "encode_variants_amd_epyc_2026-12-02_batches.txt": ["0.96", "0.73", "0.87", "0.72"],
    "bench_peer_amd_epyc_2026-12-01.txt": ["1.00"],
    "compact_size_2026-12-01.txt": ["165M", "83M", "42M", "0.99998"],
    "stats_calibration_2026-12-01.txt": ["93.6", "99.4", "0.6", "6.4", "85.6", "87.0", "22.6", "45.2", "99.8"],
}
PERCENT = {"stats_calibration_2026-12-01.txt"}

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def file_numbers(text: str) -> list[Decimal]:
    return [Decimal(m) for m in NUMBER.findall(text.replace(",", ""))]


def rounds_to(value: Decimal, printed: str) -> bool:
    quantum = Decimal(1).scaleb(-len(printed.split(".")[1])) if "." in printed else Decimal(1)
    target = Decimal(printed)
    return any(value.quantize(quantum, rounding=mode) == target for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_readme_benchmark_numbers_come_from_the_kept_outputs(name):
    text = readme.README.read_text(encoding="utf-8")
    path = RESULTS / name
    assert path.is_file(), f"{path} is missing"
    assert f"benchmarks/results/{name}" in text, f"the README does not cite {name}"
    values = file_numbers(path.read_text(encoding="utf-8"))
    if name in PERCENT:
        values = [v * 100 for v in values]
    for printed in SOURCES[name]:
        assert re.search(rf"(?<![\d.]){re.escape(printed)}(?![\d])", text), f"README lacks {printed} ({name})"
        plain = printed.replace(",", "").removesuffix("M")
        assert any(rounds_to(v, plain) for v in values), f"{printed} in the README is not a number of {name}"


def test_a_hand_edited_benchmark_number_is_caught():
    assert not rounds_to(Decimal("222.7"), "222.8")
    assert rounds_to(Decimal("0.0319"), "0.032") and rounds_to(Decimal("345.39"), "345")
    values = file_numbers((RESULTS / "bench_peer_amd_epyc_2026-12-02.txt").read_text(encoding="utf-8"))
    assert not any(rounds_to(v, "222.8") for v in values)
