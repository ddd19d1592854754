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
    "bench_peer_amd_epyc_2026-12-02_openvino.txt": [
        "0.178", "0.432",  # GEMM peaks
        "291.9", "201.1", "84.4", "186.9", "1.56", "1.08",  # questions
        "159.0", "104.7", "30.0", "66.5", "2.39", "1.58",  # sentences
        "15.60", "2.05", "5.45", "10.49", "1.49",  # training step
        "164.9", "146.9", "182.2", "98.8",  # computed and useful GFLOP/s
        "0.99996", "0.99997", "0.9964",  # agreement
    ],
    "bench_peer_amd_epyc_2026-12-02.txt": ["75.9", "1.21", "1.45", "1.26", "1.60", "1.40"],
    "encode_backends_amd_epyc_2026-12-02.txt": [
        "325.2", "218.6", "1.49", "154.5", "101.7", "1.52", "3.8", "0.99997", "0.99994",
        "1215.2", "1213.4", "117", "170", "126", "173", "0.0002",
    ],
    "test_command_amd_epyc_2026-12-02.txt": ["7.5", "1.5", "6.0", "658", "346.1"],
    "test_command_amd_epyc_2026-12-02_b.txt": ["8.0", "6.5", "659", "376.9", "27.8", "27.1", "25.3"],
    "test_command_amd_epyc_2026-12-03.txt": ["9.3", "2.0", "7.4", "700", "425.3", "50.5", "29.1", "24.0"],
    "bench_eval_amd_epyc_2026-12-02.txt": ["244.3", "40.7", "81.9", "11.4", "110.4", "7.0"],
    "train_step_ab_amd_epyc_2026-12-02.txt": ["3.71", "3.14", "1.18", "4,059", "3,410", "3,218"],
    "train_equivalence_amd_epyc_2026-12-02.txt": ["0.032", "0.159", "0.0046", "0.011", "0.018", "345"],
    "encode_variants_amd_epyc_2026-12-02_batches.txt": ["0.96", "0.73", "0.87", "0.72"],
    "bench_peer_amd_epyc_2026-12-01.txt": ["1.00"],
    "precision_gap_amd_epyc_2026-12-02.txt": ["2.0423", "2.0418", "0.999", "0.0012", "0.54", "0.60", "0.0005"],
    "mteb_near_ties_amd_epyc_2026-12-02.txt": ["48", "49", "50", "8.8", "2.4", "0.60553", "0.60641"],
    "profile_ops_amd_epyc_2026-12-02.txt": [
        "62.4", "91", "420.6", "15.8", "6.6", "4.8", "2.7", "4.4", "3.3",  # encoding
        "2.52", "42.4", "58", "16.6", "17.2", "9.4", "5.9", "0.4", "13.48", "7.56",  # training step
        "139", "269",  # random draws
    ],
    "compact_size_2026-12-01.txt": ["165M", "83M", "42M", "0.99998"],
    "stats_calibration_2026-12-01.txt": ["93.6", "99.4", "0.6", "6.4", "85.6", "87.0", "22.6", "45.2", "99.8"],
}
PERCENT = {"stats_calibration_2026-12-01.txt"}

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def file_numbers(text: str) -> list[Decimal]:
    """Every number of ``text``, signed as printed (the README states differences as sizes too)."""
    values = [Decimal(m) for m in NUMBER.findall(text.replace(",", ""))]
    return values + [abs(v) for v in values if v < 0]


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
    assert any(rounds_to(v, "222.7") for v in values)
