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
from lib.alpha_axis import answer_lines, best_band
from lib.budget_axis import budget_of
from lib.checkpoints import FLAT_SHARE
from lib.efficiency_tables_report import conclusion as efficiency_conclusion
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


def _ds_label(dataset: str) -> str:
    return {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R", "mlqa_retrieval": "MLQARetrieval"}.get(dataset, dataset)


def _best_of_both(maps: pd.DataFrame) -> tuple[list[str], dict[str, int], list[str]]:
    """Per (dataset, setting) the gap of hybrid to the better specialist: text rows, outcome counts, and the
    settings where it is neither ``better`` nor ``equivalent``."""
    rows, counts, failing = [], {}, []
    for (ds, setting), g in maps.groupby(["dataset", "setting"], sort=False):
        best = g.loc[g["b_value"].idxmax()]
        counts[best["outcome"]] = counts.get(best["outcome"], 0) + 1
        label = f"{_ds_label(ds)} {setting}"
        rows.append(f"{label} vs {best['arm_b']} {_gap(best)} ({best['outcome']})")
        if best["outcome"] not in ("better", "equivalent"):
            failing.append(f"{label} ({best['outcome']})")
    return rows, counts, failing


def claim_verdicts(folder: Path) -> str:
    comp = _read(folder, "comparisons.csv").rename(columns={"a": "arm_a", "b": "arm_b", "estimate": "diff"})
    verdicts = _read(folder, "verdicts.csv").set_index("claim")["verdict"]
    margin = float(comp["margin"].dropna().iloc[0])
    maps = comp[(comp["subset"] == "all") & (comp["metric"] == "map")]
    rows, counts, failing = _best_of_both(maps)
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    rd = comp[(comp["subset"] == "all") & (comp["metric"] == "rank_distance")].set_index("dataset")
    unseen = comp[comp["subset"] == "never-seen"]
    unseen_rows, unseen_counts, unseen_failing = _best_of_both(unseen[unseen["metric"] == "map"])
    unseen_rd = unseen[unseen["metric"] == "rank_distance"].iloc[0]
    pub_mono, pub_hybrid = paper_tables.TABLE2[("XLM-R", "mono")], paper_tables.TABLE2[("XLM-R", "hybrid")]

    def rel(r, c="diff"):
        return f"{r[c] / r['b_value']:+.1%}"

    def rel_ci(r):
        return f"{rel(r)} [{rel(r, 'ci_low')}, {rel(r, 'ci_high')}] ({r['outcome']})"

    where = ("every setting is better or equivalent" if not failing
             else "not better or equivalent in " + ", ".join(failing))
    claim1 = (f"1. *Hybrid matches or beats the better of X-X-mono and X-Y in every setting*: "
              f"**{verdicts[1]}** here ({summary} of {len(rows)} settings; {where}). Gap of hybrid to the better "
              f"specialist, 95% interval ({_method(comp)}): " + "; ".join(rows) + f". \"Equivalent\" means "
              f"the interval lies within +-{margin:g} mAP (the margin declared before the run).")
    claim2 = (f"2. *Hybrid reduces language bias against X-X-mono substantially* (by at least 10% of mono's mean "
              f"rank distance): **{verdicts[2]}**: rank distance "
              + " and ".join(f"{rel_ci(rd.loc[ds])} on {_ds_label(ds)}" for ds in DATASETS if ds in rd.index)
              + f" (paper, XLM-R: {pub_hybrid['xquad_r'] / pub_mono['xquad_r'] - 1:+.1%} on XQuAD-R, "
              f"{pub_hybrid['mlqa_r'] / pub_mono['mlqa_r'] - 1:+.1%} on MLQA-R).")
    unseen_where = ("better or equivalent in every setting" if not unseen_failing
                    else "not better or equivalent in " + ", ".join(unseen_failing))
    claim3 = (f"3. *The effect holds for never-seen languages (el, th, tr)*: **{verdicts[3]}**: on their "
              f"questions hybrid against the better specialist is {unseen_where} ("
              + "; ".join(unseen_rows) + f"); rank distance {rel_ci(unseen_rd)} on "
              f"{_ds_label(unseen_rd['dataset'])}.")
    return "\n".join([claim1, claim2, claim3])


def training_times(folder: Path) -> str:
    """Training wall time per run (optimizer steps, validation and checkpoints; not model loading), by the
    machine it ran on (``04_checkpoints.csv``, from each run's ``train_config.json``)."""
    runs = _read(folder, "04_checkpoints.csv")
    runs["cpu_model"] = runs["cpu_model"].fillna("").replace("", "CPU not recorded")
    runs["precision"] = runs["precision"].fillna("").replace("", "precision not recorded")
    lines = []
    for (cpu, prec, steps), part in runs.dropna(subset=["train_seconds"]).groupby(
            ["cpu_model", "precision", "steps"], sort=True):
        minutes = part["train_seconds"] / 60
        lines.append(f"- {len(part)} run(s) of {int(steps)} steps on {cpu} ({prec}): median {minutes.median():.1f} "
                     f"min per run, {minutes.min():.1f}-{minutes.max():.1f} min")
    if not lines:
        raise DataError(f"{folder / '04_checkpoints.csv'} has no training times")
    return "\n".join(lines)


def bias_block(folder: Path) -> str:
    """Same-language preference per arm in the multilingual pool (``05_bias_summary.csv``; per arm, the mean
    over its seeds of per-language means), and where the untuned model stands on monolingual mAP
    (``04_strategy_table.csv``)."""
    summary = _read(folder, "05_bias_summary.csv").set_index(["dataset", "arm"])
    table = _read(folder, "04_strategy_table.csv").set_index(["arm", "dataset", "quantity"])["mean"]
    order = [a for a, _ in ARMS]
    labels = dict(ARMS)
    lines = []
    for ds in DATASETS:
        if ds not in summary.index.get_level_values(0):
            continue
        part = summary.loc[ds]
        arms = [a for a in order if a in part.index]
        first = ", ".join(f"{labels[a]} {part.loc[a, 'own_first']:.0%}" for a in arms)
        shares = part["top10_same_lang_share"].dropna()  # needs questions present in every language
        top10 = ", ".join(f"{labels[a]} {shares[a]:.0%}" for a in arms if a in shares.index)
        mono = {a: float(table[(a, ds, "mono mAP")]) for a in arms if (a, ds, "mono mAP") in table.index}
        best = max(mono, key=mono.get)
        lines.append(f"- {_ds_label(ds)}, multilingual pool: the relevant candidate in the question's own language "
                     f"ranks above all its translations for {first} of questions"
                     + (f"; share of the top 10 in the question's language: {top10}" if top10 else "")
                     + f". Best monolingual mAP: {labels[best]} ({_num(mono[best])}"
                     + (f"; untuned {_num(mono['zero-shot'])}" if best != "zero-shot" and "zero-shot" in mono else "")
                     + ").")
    return "\n".join(lines)


def evaluation_times_block(folder: Path) -> str:
    """Seconds per model and dataset for the evaluations that encoded (not read cached embeddings), by the
    machine they ran on (``04_evaluation_times.csv``, from ``evaluations.json``)."""
    times = _read(folder, "04_evaluation_times.csv").dropna(subset=["seconds"])
    times = times[times["encoded"].astype(str).str.lower() == "true"]
    if times.empty:
        raise DataError(f"{folder / '04_evaluation_times.csv'} has no timed evaluation that encoded")
    lines = []
    for (cpu, prec), part in times.groupby(["cpu_model", "precision"], sort=True):
        per_ds = "; ".join(f"{_ds_label(ds)} {len(g)} models, median {g['seconds'].median():.0f} s "
                           f"({g['encode_seconds'].median():.0f} s of it encoding)"
                           for ds, g in part.groupby("dataset", sort=False))
        both = part.groupby("model").filter(lambda g: g["dataset"].nunique() == len(DATASETS))
        total = both.groupby("model")["seconds"].sum()
        lines.append(f"- {cpu} ({prec}): {per_ds}" + (f"; both datasets: median {total.median():.0f} s per model "
                                                      f"({total.min():.0f}-{total.max():.0f} s, {len(total)} models)"
                                                      if len(total) else "") + ".")
    return "\n".join(lines)


def _method(comp: pd.DataFrame) -> str:
    """How the comparisons' intervals were made, from their ``method`` column."""
    methods = sorted(set(comp.get("method", pd.Series(dtype=str)).dropna()))
    return "; ".join(methods) if methods else "method not recorded"


def seed_values(folder: Path) -> str:
    """Every arm's macro mAP per setting: the mean over seeds and each seed's own value beside it
    (``04_seed_values.csv``, written by notebook 04 from the models' own metrics)."""
    seeds = _read(folder, "04_seed_values.csv")
    seeds = seeds[seeds["metric"] == "map"]
    order = {a: i for i, a in enumerate(("zero-shot", "mono", "cross", "hybrid"))}
    arms = sorted(seeds["arm"].unique(), key=lambda a: (order.get(a, len(order)), a))
    columns = [(ds, s) for ds in DATASETS for s in SETTINGS if ((seeds["dataset"] == ds) & (seeds["setting"] == s)).any()]
    lines = ["| arm | seeds | " + " | ".join(f"{_ds_label(ds)} {s}" for ds, s in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for arm in arms:
        part = seeds[seeds["arm"] == arm].sort_values("seed", na_position="first")
        cells = []
        for ds, s in columns:
            values = part[(part["dataset"] == ds) & (part["setting"] == s)]["value"]
            each = " ".join(_num(v) for v in values)
            cells.append(f"**{_num(values.mean())}**" + (f" ({each})" if len(values) > 1 else ""))
        n = part.groupby("model").ngroups
        lines.append(f"| {arm} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def alpha_axis_block(folder: Path) -> str:
    """The alpha axis: macro mAP per alpha (mean over seeds, interval over seeds and questions), the band of
    alphas not worse than the best, and the answer in words (``04_alpha_axis.csv``)."""
    table = _read(folder, "04_alpha_axis.csv")
    band = best_band(table)
    maps = table[table["metric"] == "map"]
    alphas = sorted(maps["alpha"].unique())
    names = {0.0: "0 (cross)", 1.0: "1 (mono)"}
    lines = ["| dataset | setting | " + " | ".join(f"alpha {names.get(a, f'{a:g}')}" for a in alphas)
             + " | not worse than the best |", "|---|---|" + "---|" * (len(alphas) + 1)]
    for (ds, setting), part in maps.groupby(["dataset", "setting"], sort=False):
        by = part.set_index("alpha")
        cells = []
        for a in alphas:
            if a not in by.index:
                cells.append("-")
                continue
            r = by.loc[a]
            text = f"{_num(r['estimate'])} [{_num(r['low'])}, {_num(r['high'])}] ({int(r['n_seeds'])})"
            cells.append(f"**{text}**" if r["vs_best_outcome"] == "reference" else text)
        b = band[(band["dataset"] == ds) & (band["setting"] == setting) & (band["metric"] == "map")]["band"].iloc[0]
        lines.append(f"| {_ds_label(ds)} | {setting} | " + " | ".join(cells) + f" | {b} |")
    lines.append("")
    lines += [f"- {line}" for line in answer_lines(table, band, "map")]
    if (table["metric"] == "rank_distance").any():
        lines.append(f"- {answer_lines(table, band, 'rank_distance')[-1]}")
    return "\n".join(lines)


def checkpoint_choice(folder: Path) -> str:
    """Which step each run kept (lowest validation loss) and whether any verdict or comparison changes when
    every run's last step is used instead (``04_checkpoints.csv``, ``04_checkpoint_rules.csv``,
    ``04_checkpoint_verdicts.csv``)."""
    runs = _read(folder, "04_checkpoints.csv")
    runs["arm"] = [paper_tables.arm_label(s, a) for s, a in zip(runs["strategy"], runs["alpha"])]
    kept = "; ".join(f"{arm}: " + ", ".join(str(int(x)) for x in part.sort_values("seed")["best_step"])
                     for arm, part in runs.groupby("arm", sort=False))
    steps = int(runs["steps"].max())
    lines = [f"- Step kept by the lowest validation loss, per arm in seed order (of {steps}): {kept}. "
             f"{int(runs['last_is_kept'].sum())} of {len(runs)} runs kept their last step; "
             f"{int(runs['flat'].sum())} kept an earlier step whose loss is within {FLAT_SHARE:.0%} of the last "
             "step's (flat: the loss cannot tell the two apart)."]
    if (folder / "04_checkpoint_rules.csv").is_file():
        comp = _read(folder, "04_checkpoint_rules.csv")
        claims = _read(folder, "04_checkpoint_verdicts.csv")
        verdicts = "; ".join(f"claim {int(r.claim)}: {r.verdict_kept}" + ("" if r.verdict_kept == r.verdict_last
                                                                           else f" -> {r.verdict_last}")
                             for r in claims.itertuples())
        changed = comp[comp["changed"]]
        listed = "; ".join(f"{_ds_label(r.dataset)} {r.setting} {r.metric} {r.arm_a} vs {r.arm_b} ({r.subset}): "
                           f"{r.outcome_kept} -> {r.outcome_last}" for r in changed.itertuples())
        lines.append(f"- With every run's last step instead: {int(claims['changed'].sum())} of {len(claims)} "
                     f"verdicts change ({verdicts}); {len(changed)} of {len(comp)} comparison outcomes change"
                     + (f": {listed}." if listed else "."))
    if (folder / "04_checkpoint_retrieval.csv").is_file():
        rule = _read(folder, "04_checkpoint_retrieval.csv")
        flat = rule[rule["flat"].astype(str).str.lower() == "true"]
        each = "; ".join(f"{r.model} {_num(r.val_map_kept)} kept / {_num(r.val_map_last)} last" for r in flat.itertuples())
        moved = int((flat["chosen"] == "last").sum())
        text = (f"- Where the loss is flat, the pooled validation mAP (held-out questions against their passages in "
                f"every language) decides: {each or 'no flat run'}; {moved} of {len(flat)} move to the last step")
        if moved and (folder / "04_checkpoint_retrieval_verdicts.csv").is_file():
            ret = _read(folder, "04_checkpoint_retrieval_verdicts.csv")
            text += ", and " + "; ".join(
                f"claim {int(r.claim)}: {r.verdict_kept}" + ("" if r.verdict_kept == r.verdict_retrieval
                                                             else f" -> {r.verdict_retrieval}")
                for r in ret.itertuples())
        else:
            text += ", so the verdicts are those above"
        lines.append(text + ".")
    return "\n".join(lines)


def budget_axis_block(folder: Path, other: str = "budget") -> str:
    """The verdicts at each training budget and the comparisons whose outcome changes with it
    (``04_budget_axis.csv`` of this profile, ``verdicts.csv`` of this profile and of ``other``)."""
    changes = _read(folder, "04_budget_axis.csv")
    budgets = sorted(int(c.split("_")[1]) for c in changes.columns if c.startswith("outcome_"))
    verdicts = {}
    for f in (folder, folder.parent / other):
        v = _read(f, "verdicts.csv")
        steps = budget_of(f.name)
        verdicts[steps] = v.set_index("claim")["verdict"]
    claims = "; ".join(f"claim {c}: " + " / ".join(str(verdicts[b].get(c, "-")) for b in budgets)
                       for c in sorted(set().union(*[v.index for v in verdicts.values()])))
    changed = changes[changes["changed"]]
    listed = "; ".join(f"{_ds_label(r['dataset'])} {r['setting']} {r['metric']} {r['a']} vs {r['b']} "
                       f"({r['subset']}): " + " -> ".join(str(r[f'outcome_{b}']) for b in budgets)
                       for _, r in changed.iterrows())
    text = (f"- Verdicts at {' / '.join(str(b) for b in budgets)} steps: {claims}.\n"
            f"- {len(changed)} of {len(changes)} comparison outcomes change with the budget"
            + (f": {listed}." if listed else "."))
    times_file = folder.parent / other / "run_times.csv"
    if times_file.is_file():
        times = _read(folder.parent / other, "run_times.csv")
        runs = times[times["notebook"] == "03_training"].drop_duplicates("run", keep="last").dropna(
            subset=["cpu_model"])
        if len(runs):
            seeds = sorted({int(m.group(1)) for m in (re.search(r"seed-(\d+)", r) for r in runs["run"]) if m})
            machines = ", ".join(f"{cpu} ({prec})" for (cpu, prec), _ in runs.groupby(["cpu_model", "precision"]))
            minutes = runs["seconds"] / 60
            text += (f"\n- The {budget_of(other)}-step profile (`{other}`): {len(runs)} training runs, seeds "
                     f"{', '.join(map(str, seeds))}, {minutes.min():.1f}-{minutes.max():.1f} min each (training "
                     f"and evaluation) on {machines}, 2 cores (`results/{other}/run_times.csv`); with "
                     f"{len(seeds)} seeds per arm its intervals are wider than the default's.")
    return text


def efficiency_findings(folder: Path) -> str:
    """Question 1's findings: notebook 06's conclusion, computed from ``efficiency.csv``."""
    rows = _read(folder, "efficiency.csv")
    others = sorted(set(rows["dataset"].dropna()) - {"xquad_r"})
    if not others:
        raise DataError(f"{folder / 'efficiency.csv'} has no DuReader rows: run notebook 06")
    return efficiency_conclusion(rows, others[0], "xquad_r")


def students_table(folder: Path) -> str:
    """The untuned models of the size axis (distilled students and the full backbone, measured here) with
    each student's recipe, and published MLQARetrieval figures for orientation (``07_students.csv``)."""
    q = _read(folder, "07_students.csv")
    measured, published = q[q["source"].str.startswith("measured")], q[q["source"].str.startswith("published")]
    xq = [c for c in ("xquad_r_map_mono", "xquad_r_map_cross", "xquad_r_map_multi") if c in q.columns]
    lines = ["| model | layers | non-embedding parameters | untuned MLQARetrieval nDCG@10 | XQuAD-R mAP "
             "mono / cross / multi | distilled from teacher layers | held-out cosine to the teacher | "
             "distillation time |", "|---|---|---|---|---|---|---|---|"]
    for r in measured.sort_values("layers").to_dict("records"):
        student = isinstance(r.get("teacher_layers"), str)
        cpu = r.get("distill_cpu")
        time_text = (f"{r['distill_seconds'] / 60:.1f} min ({cpu if isinstance(cpu, str) and cpu else 'CPU not recorded'}, "
                     f"{'bf16' if r['distill_bf16'] else 'fp32'}; {int(r['distill_steps'])} steps, "
                     f"{int(r['distill_texts']):,} texts)") if student else "- (the teacher)"
        lines.append(f"| `{r['model']}` | {int(r['layers'])} | {r['non_embedding_params'] / 1e6:.1f}M | "
                     f"{_num(r['mlqa_retrieval_ndcg10'])} [{_num(r['ndcg10_low'])}, {_num(r['ndcg10_high'])}] | "
                     + (" / ".join(_num(r[c]) for c in xq) if xq else "-") + " | "
                     + (r["teacher_layers"] if student else "-") + " | "
                     + (f"{r['held_out_cosine']:.3f}" if student else "-") + f" | {time_text} |")
    for r in published.to_dict("records"):
        lines.append(f"| {r['model']} (published, not measured here) | - | - | {_num(r['mlqa_retrieval_ndcg10'])} "
                     "| - | - | - | - |")
    return "\n".join(lines)


def _seed_ranges(seeds: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``0-2, 4``."""
    parts, seeds = [], sorted(seeds)
    for s in seeds:
        if parts and s == parts[-1][1] + 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def run_status(folder: Path) -> str:
    """How far the profile's training sweep is: which arms and seeds are trained and evaluated (their
    record and their evaluation on notebook 04's datasets are in the results folder), which are still to
    train (from the profile's plan, ``configs/<profile>.yaml``)."""
    from lib.config import load_profile, plan_runs
    from lib.models import is_finished
    from lib.results import read_manifest
    from lib.runner import _values, train_dir

    profile = folder.name
    plan = [r for r in plan_runs(load_profile(profile)) if r.notebook.stem.startswith("03")]
    entries = read_manifest(profile)["entries"]
    done: dict[str, list[int]] = {}
    todo: dict[str, list[int]] = {}
    for run in plan:
        values = _values(run)
        out = train_dir(profile, run)
        arm = dict(ARMS).get(paper_tables.arm_label(values["strategy"], float(values["alpha"])),
                             f"hybrid (alpha {float(values['alpha']):g})")
        evaluated = all(f"{out.name}__{ds}" in entries for ds in DATASETS)
        (done if is_finished(out) and evaluated else todo).setdefault(arm, []).append(int(values["seed"]))
    if not done:
        raise DataError(f"no training run of profile {profile!r} is trained and evaluated in {folder}")

    def listing(groups):
        return "; ".join(f"{arm} seed{'s' if len(seeds) > 1 else ''} {_seed_ranges(seeds)}"
                         for arm, seeds in groups.items())
    n_done = sum(len(v) for v in done.values())
    text = f"- Notebook 03: {n_done} of {len(plan)} training runs trained and evaluated ({listing(done)})"
    return text + (f"; to train: {listing(todo)}." if todo else "; the sweep is complete.")


def run_times_block(folder: Path) -> str:
    """Where and how long the notebooks of the run ran (``run_times.csv`` rows that name their machine):
    the machines, and each notebook's last execution (notebook 03's runs are timed per run, see the
    training times)."""
    times = _read(folder, "run_times.csv")
    if "cpu_model" not in times.columns or times["cpu_model"].isna().all():
        raise DataError(f"{folder / 'run_times.csv'} records no machine: rerun with the current runner")
    times = times.dropna(subset=["cpu_model"])
    machines = ", ".join(f"{cpu} ({prec})" for (cpu, prec), _ in times.groupby(["cpu_model", "precision"]))
    last = times[times["notebook"] != "03_training"].drop_duplicates("notebook", keep="last")
    parts = ", ".join(f"{r.notebook[:2]} {r.seconds / 60:.1f} min" for r in last.sort_values("notebook").itertuples())
    return (f"Reproduce with `./run_all.sh default` (runs resume, so it may be completed over several sessions). "
            f"This run's notebooks ran on {machines}, 2 cores; wall time of each notebook's last execution: "
            f"{parts} (a notebook resumed after an interruption counts only its last part; times per notebook "
            "in `results/default/run_times.csv`).")


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
            n = int(by.loc[strategy, "n_seeds"]) if strategy in by.index else 0
            cells.append(f"{_ci(by.loc[strategy])} ({n} seed{'' if n == 1 else 's'})" if n else "-")
        for other in ("mono", "cross"):
            cells.append(f"{_ci(g.loc[other], sign=True)} {g.loc[other, 'outcome']}" if other in g.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_costs(folder: Path) -> str:
    """Question 2's cost per size from ``scaling.csv``: parameters, encoding throughput of the size's untuned
    model (fixed sample of MLQA paragraphs) and the training time of its runs (optimizer steps), each with the
    machine and precision it was measured on."""
    t = _read(folder, "scaling.csv")
    lines = ["| layers | backbone | non-embedding parameters | encoding, MLQA paragraphs (texts/s) | "
             "training per run (optimizer steps) |", "|---|---|---|---|---|"]
    for (layers, backbone), part in t.groupby(["layers", "backbone"], sort=True):
        zero = part[part["strategy"] == "zero-shot"].dropna(subset=["encode_texts_per_s"])
        runs = part[part["strategy"] != "zero-shot"].dropna(subset=["train_seconds"])
        encode = (f"{zero['encode_texts_per_s'].iloc[0]:.0f} ({zero['encode_cpu'].iloc[0]}, "
                  f"{zero['encode_precision'].iloc[0]})" if len(zero) else "-")
        if len(runs):
            where = ", ".join(f"{c} ({p})" for (c, p), _ in runs.fillna({"train_cpu": "CPU not recorded",
                                                                         "train_precision": "?"}).groupby(
                ["train_cpu", "train_precision"]))
            steps = "/".join(str(int(s)) for s in sorted(runs["steps"].dropna().unique()))
            train = (f"median {runs['train_seconds'].median():.0f} s, {runs['train_seconds'].min():.0f}-"
                     f"{runs['train_seconds'].max():.0f} s over {len(runs)} runs of {steps} steps ({where})")
        else:
            train = "-"
        lines.append(f"| {int(layers)} | `{backbone}` | {part['non_embedding_params'].iloc[0] / 1e6:.1f}M | {encode} "
                     f"| {train} |")
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
    "bias-summary": bias_block,
    "efficiency-findings": efficiency_findings,
    "run-status": run_status,
    "run-times": run_times_block,
    "seed-values": seed_values,
    "training-times": training_times,
    "evaluation-times": evaluation_times_block,
    "alpha-axis": alpha_axis_block,
    "checkpoint-choice": checkpoint_choice,
    "students-table": students_table,
    "scaling-table": scaling_table,
    "scaling-answer": scaling_answer,
    "scaling-costs": scaling_costs,
    "budget-axis": budget_axis_block,
}
PENDING: dict[str, Callable[[Path], str]] = {}  # blocks written before the README carries their markers
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
