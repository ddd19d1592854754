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
    m = re.search(r"\d", body.split("\n", 1)[1])
    assert m, f"block {block} has no number"
    i = start + len(body.split("\n", 1)[0]) + 1 + m.start()  # its first digit
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


def test_scaling_costs_per_size_with_their_machine(tmp_path):
    import pandas as pd

    rows = []
    for layers, backbone, params, speed, seconds in ((3, "distilled-L3", 5.3e6, 110.0, (50.0, 60.0)),
                                                      (12, "embedded", 21.3e6, 33.0, (240.0, 300.0))):
        rows.append({"model": f"zero_{layers}", "strategy": "zero-shot", "layers": layers, "backbone": backbone,
                     "non_embedding_params": params, "encode_texts_per_s": speed, "encode_cpu": "AMD EPYC",
                     "encode_precision": "bf16"})
        for seed, sec in enumerate(seconds):
            rows.append({"model": f"mono_{layers}_s{seed}", "strategy": "mono", "layers": layers, "backbone": backbone,
                         "non_embedding_params": params, "encode_texts_per_s": speed, "train_seconds": sec,
                         "steps": 120, "train_cpu": "AMD EPYC", "train_precision": "bf16"})
    pd.DataFrame(rows).to_csv(tmp_path / "scaling.csv", index=False)
    lines = readme.scaling_costs(tmp_path).splitlines()
    assert len(lines) == 4
    assert lines[2] == ("| 3 | `distilled-L3` | 5.3M | 110 (AMD EPYC, bf16) | median 55 s, 50-60 s over 2 runs of "
                        "120 steps (AMD EPYC (bf16)) |")
    assert lines[3].startswith("| 12 | `embedded` | 21.3M | 33 (AMD EPYC, bf16) | median 270 s, 240-300 s")


def test_seed_values_show_every_seed_beside_the_mean(tmp_path):
    import pandas as pd

    rows = [{"model": "zero-shot", "arm": "zero-shot", "seed": None, "dataset": "xquad_r", "setting": "mono",
             "metric": "map", "value": 0.8}]
    for seed, v in enumerate((0.70, 0.72, 0.74)):
        rows.append({"model": f"mono_s{seed}", "arm": "mono", "seed": seed, "dataset": "xquad_r", "setting": "mono",
                     "metric": "map", "value": v})
        rows.append({"model": f"mono_s{seed}", "arm": "mono", "seed": seed, "dataset": "xquad_r",
                     "setting": "mono", "metric": "rank_distance", "value": 100.0})
    pd.DataFrame(rows).to_csv(tmp_path / "04_seed_values.csv", index=False)
    lines = readme.seed_values(tmp_path).splitlines()
    assert lines[0] == "| arm | seeds | XQuAD-R mono |"
    assert lines[2] == "| zero-shot | 1 | **.800** |"
    assert lines[3] == "| mono | 3 | **.720** (.700 .720 .740) |"


def test_checkpoint_and_budget_blocks(tmp_path):
    import pandas as pd

    runs = pd.DataFrame([{"model": f"{s}_s{k}", "strategy": s, "alpha": a, "seed": k, "steps": 120,
                          "best_step": step, "best_val_loss": 0.5, "last_val_loss": 0.505, "val_loss_rise": 0.01,
                          "flat": True, "last_is_kept": step == 120}
                         for s, a in (("mono", 1.0), ("hybrid", 0.5)) for k, step in ((0, 40), (1, 120))])
    runs.to_csv(tmp_path / "04_checkpoints.csv", index=False)
    text = readme.checkpoint_choice(tmp_path)
    assert "mono: 40, 120; hybrid: 40, 120" in text and "2 of 4 runs kept their last step" in text
    keys = {"claim": 1, "subset": "all", "dataset": "xquad_r", "setting": "mono", "metric": "map",
            "arm_a": "hybrid", "arm_b": "mono"}
    pd.DataFrame([{**keys, "diff_kept": -0.02, "outcome_kept": "worse", "diff_last": -0.005,
                   "outcome_last": "equivalent", "changed": True}]).to_csv(tmp_path / "04_checkpoint_rules.csv",
                                                                        index=False)
    pd.DataFrame([{"claim": 1, "verdict_kept": "not supported", "verdict_last": "supported", "changed": True}]).to_csv(
        tmp_path / "04_checkpoint_verdicts.csv", index=False)
    text = readme.checkpoint_choice(tmp_path)
    assert ("1 of 1 verdicts change (claim 1: not supported -> supported); 1 of 1 comparison outcomes change: "
            "XQuAD-R mono map hybrid vs mono (all): worse -> equivalent.") in text
    pd.DataFrame([{"model": "mono_s0", "flat": True, "val_map_kept": 0.61, "val_map_last": 0.6, "chosen": "kept"},
                  {"model": "mono_s1", "flat": False, "val_map_kept": None, "val_map_last": None,
                   "chosen": "kept"}]).to_csv(tmp_path / "04_checkpoint_retrieval.csv", index=False)
    assert readme.checkpoint_choice(tmp_path).splitlines()[-1] == (
        "- Where the loss is flat, the pooled validation mAP (held-out questions against their passages in every "
        "language) decides: mono_s0 .610 kept / .600 last; 0 of 1 move to the last step, so the verdicts are those "
        "above.")

    default, budget = tmp_path / "default", tmp_path / "budget"
    for folder, verdict in ((default, "not supported"), (budget, "supported")):
        folder.mkdir()
        pd.DataFrame([{"claim": 1, "verdict": verdict}, {"claim": 2, "verdict": "supported"}]).to_csv(
            folder / "verdicts.csv", index=False)
    low, high = readme.budget_of("default"), readme.budget_of("budget")
    pd.DataFrame([{"claim": 1, "subset": "all", "dataset": "mlqa_r", "setting": "cross", "metric": "map",
                   "a": "hybrid", "b": "cross", f"outcome_{low}": "worse", f"outcome_{high}": "equivalent",
                   f"estimate_{low}": -0.02, f"estimate_{high}": -0.004, "changed": True}]).to_csv(
        default / "04_budget_axis.csv", index=False)
    text = readme.budget_axis_block(default)
    assert f"Verdicts at {low} / {high} steps: claim 1: not supported / supported; claim 2: supported / supported" in text
    assert "1 of 1 comparison outcomes change with the budget: MLQA-R cross map hybrid vs cross (all): worse -> equivalent" in text
    assert "-step profile" not in text  # no run times of the other profile: no line about them
    pd.DataFrame([{"notebook": "03_training", "run": f"03_training__seed-{k}_strategy-{s}", "seconds": sec,
                   "cpu_model": "Test CPU", "precision": "bf16"}
                  for k, s, sec in ((0, "mono", 600), (0, "mono", 660), (1, "hybrid", 720))]
                 + [{"notebook": "01_data_preparation", "run": "01_data_preparation", "seconds": 3000,
                     "cpu_model": "Test CPU", "precision": "bf16"}]).to_csv(budget / "run_times.csv", index=False)
    assert readme.budget_axis_block(default).splitlines()[-1] == (
        f"- The {high}-step profile (`budget`): 2 training runs, seeds 0, 1, 11.0-12.0 min each (training and "
        "evaluation) on Test CPU (bf16), 2 cores (`results/budget/run_times.csv`); with 2 seeds per arm its "
        "intervals are wider than the default's.")


def test_training_times_by_machine(tmp_path):
    import pandas as pd

    pd.DataFrame([{"model": "a", "steps": 120, "train_seconds": 300.0, "cpu_model": "AMD EPYC", "precision": "bf16"},
                  {"model": "b", "steps": 120, "train_seconds": 420.0, "cpu_model": "AMD EPYC", "precision": "bf16"},
                  {"model": "c", "steps": 120, "train_seconds": 250.0, "cpu_model": None, "precision": None}]).to_csv(
        tmp_path / "04_checkpoints.csv", index=False)
    assert readme.training_times(tmp_path).splitlines() == [
        "- 2 run(s) of 120 steps on AMD EPYC (bf16): median 6.0 min per run, 5.0-7.0 min",
        "- 1 run(s) of 120 steps on CPU not recorded (precision not recorded): median 4.2 min per run, 4.2-4.2 min"]


def test_evaluation_times_count_only_evaluations_that_encoded(tmp_path):
    import pandas as pd

    rows = [{"model": m, "dataset": ds, "seconds": s, "encode_seconds": s - 5, "encoded": enc,
             "cpu_model": "AMD EPYC", "precision": "bf16"}
            for m, enc, base in (("a", True, 100), ("b", True, 120), ("c", False, 10))
            for ds, s in (("xquad_r", base), ("mlqa_r", base + 20))]
    pd.DataFrame(rows).to_csv(tmp_path / "04_evaluation_times.csv", index=False)
    assert readme.evaluation_times_block(tmp_path) == (
        "- AMD EPYC (bf16): XQuAD-R 2 models, median 110 s (105 s of it encoding); MLQA-R 2 models, median 130 s "
        "(125 s of it encoding); both datasets: median 240 s per model (220-260 s, 2 models).")


def test_run_times_name_the_machines_and_each_notebook(tmp_path):
    import pandas as pd

    rows = [("01_data_preparation", "01_data_preparation", 48.0), ("03_training", "03_training__seed-0", 400.0),
            ("04_evaluation", "04_evaluation", 3000.0), ("04_evaluation", "04_evaluation", 600.0)]
    pd.DataFrame([{"finished_utc": "t", "notebook": n, "run": r, "seconds": s, "cpu_count": 2,
                   "cpu_model": "AMD EPYC", "precision": "bf16"} for n, r, s in rows]).to_csv(
        tmp_path / "run_times.csv", index=False)
    text = readme.run_times_block(tmp_path)
    assert "ran on AMD EPYC (bf16), 2 cores" in text and "01 0.8 min, 04 10.0 min (" in text
    pd.DataFrame([{"finished_utc": "t", "notebook": "01_a", "run": "01_a", "seconds": 1.0, "cpu_count": 2}]).to_csv(
        tmp_path / "run_times.csv", index=False)
    with pytest.raises(DataError, match="records no machine"):
        readme.run_times_block(tmp_path)
