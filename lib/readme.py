"""The README's results, written from the results files so that they cannot drift.

The README marks each generated block with a pair of HTML comments::

    <!-- generated: NAME (python -m lib.readme) -->
    ...
    <!-- end generated: NAME -->

``python -m lib.readme`` rewrites every block from ``results/default``;
``python -m lib.readme --check`` exits 1 and names the blocks that differ
(the test suite runs the check, so a README number changed by hand, or a
results file changed without regenerating the README, fails CI).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from lib import paper_tables
from lib.errors import DataError
from lib.paths import PROJ_ROOT, atomic_write, results_dir
from lib.scaling_report import verdict_lines

README = PROJ_ROOT / "README.md"
ARMS = [("zero-shot", "zero-shot (untuned)"), ("mono", "X-X-mono"), ("cross", "X-Y (cross)"),
        ("hybrid", "hybrid (alpha 0.5)")]
SETTINGS = ("mono", "cross", "multi")
DATASETS = ("xquad_r", "mlqa_r")


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise DataError(f"{path} is missing: run the notebook that writes it (see README 'Results') first")
    return pd.read_csv(path)


def _num(x: float, digits: int = 3) -> str:
    """``.799`` style for scores in [0, 1)."""
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("0.") else s


def results_table(folder: Path) -> str:
    table = _read(folder, "04_strategy_table.csv")
    bias = _read(folder, "05_bias_summary.csv").set_index(["dataset", "arm"])
    means = table.set_index(["arm", "dataset", "quantity"])["mean"]
    values = {(arm, ds, s): float(means[(arm, ds, f"{s} mAP")]) for arm, _ in ARMS for ds in DATASETS
              for s in SETTINGS}
    rd = {(arm, ds): float(bias.loc[(ds, arm), "rank_distance"]) for arm, _ in ARMS for ds in DATASETS}
    best = {(ds, s): max(values[(a, ds, s)] for a, _ in ARMS) for ds in DATASETS for s in SETTINGS}
    best_rd = {ds: min(rd[(a, ds)] for a, _ in ARMS) for ds in DATASETS}

    def cell(arm, ds):
        parts = []
        for s in SETTINGS:
            v = _num(values[(arm, ds, s)])
            parts.append(f"**{v}**" if values[(arm, ds, s)] == best[(ds, s)] else v)
        return " / ".join(parts)

    def rank(arm):
        return " / ".join(f"**{rd[(arm, ds)]:.0f}**" if rd[(arm, ds)] == best_rd[ds] else f"{rd[(arm, ds)]:.0f}"
                          for ds in DATASETS)

    lines = ["| model | XQuAD-R | MLQA-R | mean rank distance XQuAD-R / MLQA-R |", "|---|---|---|---|"]
    for arm, label in ARMS:
        lines.append(f"| {label} | {cell(arm, 'xquad_r')} | {cell(arm, 'mlqa_r')} | {rank(arm)} |")
    pub = paper_tables.TABLE1[("XLM-R", "hybrid")]
    pub_rd = paper_tables.TABLE2[("XLM-R", "hybrid")]
    lines.append("| paper, XLM-R hybrid (published) | " + " | ".join(" / ".join(_num(v) for v in pub[ds])
                                                                      for ds in DATASETS)
                 + f" | {pub_rd['xquad_r']} / {pub_rd['mlqa_r']} |")
    return "\n".join(lines)


def _gap(r) -> str:
    return f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"


def claim_verdicts(folder: Path) -> str:
    comp = _read(folder, "comparisons.csv").rename(columns={"a": "arm_a", "b": "arm_b", "estimate": "diff"})
    verdicts = _read(folder, "verdicts.csv").set_index("claim")["verdict"]
    maps = comp[(comp["subset"] == "all") & (comp["metric"] == "map")]
    rows, counts = [], {}
    for (ds, setting), g in maps.groupby(["dataset", "setting"], sort=False):
        best = g.loc[g["b_value"].idxmax()]
        counts[best["outcome"]] = counts.get(best["outcome"], 0) + 1
        rows.append(f"{'XQuAD-R' if ds == 'xquad_r' else 'MLQA-R'} {setting} vs {best['arm_b']} {_gap(best)} "
                    f"({best['outcome']})")
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    rd = comp[(comp["subset"] == "all") & (comp["metric"] == "rank_distance")].set_index("dataset")
    unseen = comp[comp["subset"] == "never-seen"]
    unseen_rd = unseen[unseen["metric"] == "rank_distance"].iloc[0]

    def rel(r, c="diff"):
        return f"{r[c] / r['b_value']:+.1%}"

    claim1 = (f"1. *Hybrid matches or beats the better of X-X-mono and X-Y in every setting*: "
              f"**{verdicts[1]}** here ({summary} of six settings). Gap of hybrid to the better "
              f"specialist, 95% interval: " + "; ".join(rows) + ". \"Equivalent\" means the interval lies "
              "within +-0.01 mAP (the margin declared before the run); the gaps are small either way: "
              "hybrid sits between the two specialists, which is a trade-off, not \"the best of both\".")
    claim2 = (f"2. *Hybrid reduces language bias against X-X-mono substantially*: **{verdicts[2]}**: rank "
              f"distance {rel(rd.loc['xquad_r'])} [{rel(rd.loc['xquad_r'], 'ci_low')}, "
              f"{rel(rd.loc['xquad_r'], 'ci_high')}] on XQuAD-R and {rel(rd.loc['mlqa_r'])} "
              f"[{rel(rd.loc['mlqa_r'], 'ci_low')}, {rel(rd.loc['mlqa_r'], 'ci_high')}] on MLQA-R "
              "(paper: -30.1% for XLM-R on XQuAD-R).")
    claim3 = (f"3. *The effect holds for never-seen languages (el, th, tr)*: the bias reduction does "
              f"({rel(unseen_rd)} on XQuAD-R), the \"best of both\" does not (as in claim 1), so "
              f"**{verdicts[3]}** as a whole.")
    return "\n".join([claim1, claim2, claim3])


def run_minutes(folder: Path) -> str:
    times = _read(folder, "run_times.csv")
    first = times[times["notebook"].str[:2].isin(["01", "02", "03", "04", "05"])].drop_duplicates("run", keep="first")
    return (f"Reproduce with `./run_all.sh default --only 01 02 03 04 05` ({first['seconds'].sum() / 60:.1f} min "
            "here for the run whose numbers are shown; times per notebook in `results/default/run_times.csv`).")


def _ci(r, digits: int = 3, sign: bool = False) -> str:
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{f.format(r['estimate'])} [{f.format(r['low'])}, {f.format(r['high'])}]"


def scaling_table(folder: Path) -> str:
    """Question 2's table: per size, MLQARetrieval nDCG@10 (all 49 subsets) of the untuned model and of
    each strategy (mean over seeds, 95% interval over seeds and questions) and hybrid's gaps with their
    outcomes, from ``07_mlqa_estimates.csv`` and ``07_mlqa_gaps.csv``."""
    est = _read(folder, "07_mlqa_estimates.csv")
    gaps = _read(folder, "07_mlqa_gaps.csv")
    est, gaps = est[est["group"] == "all"], gaps[gaps["group"] == "all"]
    lines = ["| layers | model | non-embedding parameters | untuned | X-X-mono | X-Y (cross) | hybrid | "
             "hybrid - mono | hybrid - cross |", "|---|---|---|---|---|---|---|---|---|"]
    for k, part in est.groupby("layers", sort=True):
        by = part.set_index("strategy")
        g = gaps[gaps["layers"] == k].set_index("strategy_b")
        zero = by.loc["zero-shot"] if "zero-shot" in by.index else None
        cells = [f"{int(k)}", f"`{zero['backbone'] if zero is not None else part['backbone'].iloc[0]}`",
                 f"{part['non_embedding_params'].iloc[0] / 1e6:.1f}M",
                 _ci(zero) if zero is not None else "-"]
        for strategy in ("mono", "cross", "hybrid"):
            cells.append(f"{_ci(by.loc[strategy])} ({int(by.loc[strategy, 'n_seeds'])} seeds)"
                         if strategy in by.index else "-")
        for other in ("mono", "cross"):
            cells.append(f"{_ci(g.loc[other], sign=True)} {g.loc[other, 'outcome']}" if other in g.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_answer(folder: Path) -> str:
    """Question 2's findings in words, computed from the notebook-07 tables (``scaling_report.verdict_lines``)."""
    out = verdict_lines(_read(folder, "07_mlqa_estimates.csv"), _read(folder, "07_mlqa_gaps.csv"),
                        "MLQARetrieval nDCG@10")
    if (folder / "07_xquad_gaps.csv").is_file():
        out += verdict_lines(_read(folder, "07_xquad_estimates.csv"), _read(folder, "07_xquad_gaps.csv"),
                             "XQuAD-R mAP")
    return "\n".join(f"- {line}" for line in out)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "results-table": results_table,
    "claim-verdicts": claim_verdicts,
    "run-minutes-01-05": run_minutes,
}
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) \(python -m lib.readme\) -->\n)(?P<body>.*?)"
                    r"(\n<!-- end generated: (?P=name) -->)", re.S)


def render(text: str, folder: Path) -> tuple[str, list[str]]:
    """The README text with every block regenerated, and the names of the blocks that changed."""
    changed, seen = [], set()

    def sub(m):
        name = m.group("name")
        if name not in BLOCKS:
            raise DataError(f"README block {name!r} has no generator; known: {sorted(BLOCKS)}")
        seen.add(name)
        body = BLOCKS[name](folder)
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    out = _BLOCK.sub(sub, text)
    missing = set(BLOCKS) - seen
    if missing:
        raise DataError(f"README has no block for {sorted(missing)}: add the marker comments back")
    return out, changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate (or --check) the README's results blocks.")
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs from its results files")
    ap.add_argument("--profile", default="default")
    args = ap.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new, changed = render(text, results_dir(args.profile))
    if args.check:
        if changed:
            print(f"README blocks out of date with results/{args.profile}: {', '.join(changed)}; "
                  "run `python -m lib.readme`", file=sys.stderr)
            return 1
        print("README blocks match the results files")
        return 0
    if changed:
        with atomic_write(README) as tmp:
            tmp.write_text(new, encoding="utf-8")
    print(f"README: {len(changed)} block(s) rewritten" + (f" ({', '.join(changed)})" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
