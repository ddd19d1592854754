"""The printed conclusions of notebooks 01, 02, 03, 05 and 08: the numbers in their lines come from the tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib import bias_report, data_report, explore, sampling_report, training_report


def test_data_conclusion_counts_pairs_sets_parallelism_and_unseen_languages():
    summary = pd.DataFrame(
        [("mlqa_test", "train", "pair", "de", "de", 30), ("mlqa_test", "train", "pair", "ar", "de", 50),
         ("mlqa_test", "val", "pair", "ar", "de", 5), ("tydiqa", "train", "pair", "en", "en", 7),
         ("xquad_r", "eval", "question", "de", "", 4), ("xquad_r", "eval", "question", "el", "", 4),
         ("xquad_r", "eval", "candidate", "", "de", 6), ("xquad_r", "eval", "candidate", "", "el", 5)],
        columns=["dataset", "split", "role", "query_lang", "doc_lang", "count"])
    par = pd.DataFrame({"dataset": ["xquad_r", "mlqa_test", "mlqa_test"], "side": ["question", "passage", "passage"],
                        "k": [2, 1, 3], "items": [4, 3, 1]})
    pairs = pd.DataFrame({"dataset": ["tydiqa", "tydiqa", "mlqa_test", "mlqa_test"],
                          "positive": ["sentence", "paragraph", "paragraph", "paragraph"]})
    lengths = pd.DataFrame({"role": ["question"] * 4 + ["candidate"] * 2, "tokens": [10, 20, 30, 200, 300, 50]})
    lines = data_report.conclusion(summary, par, pairs, lengths)
    text = "\n".join(lines)
    assert ("Training pairs, mlqa_test: 85 (80 train / 5 val); questions in ar de, passages in de; "
            "per question language: ar 55, de 30.") in lines
    assert "xquad_r 8 questions / 11 candidates (2 languages)" in text
    assert "mlqa_test (passages): 4 items, languages per item median 1 (min 1, max 3); 25% exist in two" in text
    assert "xquad_r (questions): 4 items, languages per item median 2 (min 2, max 2); 100% exist" in text
    assert "mlqa_test 0%, tydiqa 50%" in text
    assert "Texts over 128 tokens: question 25.0%, candidate 50.0%." in lines
    assert lines[-1] == "Never seen in training (1 language, evaluation only): el (xquad_r)."


def test_data_conclusion_says_when_every_language_is_trained():
    summary = pd.DataFrame([("tydiqa", "train", "pair", "en", "en", 3), ("xquad_r", "eval", "question", "en", "", 2)],
                           columns=["dataset", "split", "role", "query_lang", "doc_lang", "count"])
    assert data_report.conclusion(summary, pd.DataFrame(columns=["dataset", "side", "k", "items"]))[-1] == \
        "Every evaluation language occurs in the training pairs."


def _batches(kinds: list[str], cross_langs=("de", "es")) -> pd.DataFrame:
    rows = []
    for step, kind in enumerate(kinds, 1):
        if kind == "mono":
            rows += [(step, kind, "tydiqa", "en", "en"), (step, kind, "tydiqa", "en", "en")]
        else:
            rows += [(step, kind, "mlqa_test", "ar", cross_langs[0]), (step, kind, "mlqa_test", "hi", cross_langs[1])]
    return pd.DataFrame(rows, columns=["step", "batch_kind", "dataset", "query_lang", "doc_lang"])


def test_sampling_conclusion_sets_mono_share_against_the_rule():
    frames = {"mono": _batches(["mono"] * 4), "cross": _batches(["cross"] * 4),
              "hybrid": _batches(["mono", "mono", "mono", "cross"])}
    probs = pd.DataFrame({"dataset": ["tydiqa", "mlqa_test"], "kind": ["mono", "cross"], "probability": [1.0, 1.0]})
    lines = sampling_report.conclusion(frames, 0.5, probs)
    text = "\n".join(lines)
    assert "4 of 4 batches monolingual (100.0%; rule: 100%), exactly as its rule says." in text
    assert "0 of 4 batches monolingual (0.0%; rule: 0%), exactly as its rule says." in text
    # hybrid: 3 of 4 against 2 expected, binomial sd sqrt(4 * 0.25) = 1
    assert "hybrid: 3 of 4 batches monolingual (75.0%; rule: alpha = 0.5), +1.0 binomial sd from the expected 2." \
        in lines
    assert "X-Y (cross) 2.0 / 2.0 (0% same-language pairs)" in text
    assert "hybrid 1.2 / 1.2 (75% same-language pairs)" in text
    assert lines[-1] == ("Source datasets, all strategies together: mono batches: tydiqa 100% (probability 100%); "
                         "cross batches: mlqa_test 100% (probability 100%).")


def test_sampling_conclusion_flags_a_share_against_the_rule():
    lines = sampling_report.conclusion({"mono": _batches(["mono", "cross"])}, 0.5)
    assert lines[0].endswith("1 of 2 batches monolingual (50.0%; rule: 100%), AGAINST its rule.")


def _log(losses, val):
    rows = [{"step": 0, "loss": np.nan, "pairs_per_s": np.nan, "val_loss": val.get(0, np.nan)}]
    rows += [{"step": s, "loss": v, "pairs_per_s": 10.0 * s, "val_loss": val.get(s, np.nan)}
             for s, v in enumerate(losses, 1)]
    return pd.DataFrame(rows)


def test_training_conclusion_reports_kept_step_losses_time_and_trend():
    facts = {"run_name": "hybrid_a0.5_s0", "strategy": "hybrid", "steps": 8, "batch_size": 4, "best_step": 4,
             "train_seconds": 12.34, "bf16_used": False, "device": "cpu", "alpha": 0.5}
    log = _log([8, 7, 6, 5, 4, 3, 2, 1], {0: 4.0, 4: 2.0, 8: 3.0})
    per_batch = pd.DataFrame({"batch_kind": ["mono", "cross", "mono", "mono"]})
    lines = training_report.conclusion(facts, log, per_batch)
    assert lines[0] == "Run hybrid_a0.5_s0: hybrid batches, 8 steps of 4 pairs."
    assert lines[1] == ("Kept step 4 of 8: best validation loss 2.000 at step 4 (untrained 4.000, -50.0%); "
                        "last validation loss 3.000 at step 8.")
    assert lines[2] == "Training took 12.3 s (45 pairs/s at the median; bf16 off, cpu)."
    assert lines[3] == ("At the end: validation loss no longer falling (2.000 at step 4 -> 3.000 at step 8); "
                        "training loss still falling (mean 3.500 -> 1.500 over the last two quarters of the steps).")
    assert lines[4] == "Batches seen: 3 of 4 monolingual (75.0%; alpha = 0.5)."


def test_training_conclusion_reads_a_resumed_log_once_per_step():
    log = _log([1, 2, 3, 4, 5, 6, 7, 8], {0: 5.0, 4: 4.0, 8: 3.0})
    log = pd.concat([log, log.iloc[[7, 8]]], ignore_index=True)  # steps 7 and 8 logged again after a resume
    lines = training_report.conclusion({"steps": 8, "batch_size": 2}, log)
    assert lines[-1] == ("At the end: validation loss still falling (4.000 at step 4 -> 3.000 at step 8); "
                         "training loss flat or rising (mean 5.500 -> 7.500 over the last two quarters of the steps).")
    short = training_report.conclusion({"steps": 4, "batch_size": 2}, _log([4, 3, 2, 1], {0: 5.0, 4: 4.0}))
    assert short[-1] == ("At the end: validation loss measured once after step 0 (5.000 -> 4.000), lower than "
                         "untrained; training loss: 4 steps are too few to tell its trend (one batch's loss is noisy).")


def test_bias_conclusion_gives_relative_change_with_interval():
    rd = pd.DataFrame({"xquad_r": {"mono": 200.0, "cross": 150.0, "hybrid": 150.0}})
    summary = pd.DataFrame({"dataset": ["xquad_r"] * 2, "arm": ["mono", "hybrid"],
                            "top10_same_lang_share": [0.8, 0.5], "own_rank": [1.5, 3.0],
                            "other_rank": [40.0, 20.0]}).set_index(["dataset", "arm"])
    comparisons = pd.DataFrame({"claim": [2, 1], "dataset": ["xquad_r"] * 2, "a": ["hybrid"] * 2,
                                "b": ["mono"] * 2, "metric": ["rank_distance", "map"], "subset": ["all"] * 2,
                                "ci_low": [-70.0, 0.0], "ci_high": [-30.0, 0.1],
                                "outcome": ["substantial", "equivalent"]})
    lines = bias_report.conclusion(rd, summary, {"xquad_r": 4}, comparisons)
    assert lines[0].startswith("XQuAD-R: mean rank distance X-X-mono 200.0, X-Y (cross) 150.0, hybrid 150.0")
    assert lines[1] == ("XQuAD-R: hybrid against mono -25.0% (-50.00 ranks), 95% interval -35.0% to -15.0% "
                        "(-70.00 to -30.00 ranks; notebook 04's claim 2: substantial).")
    assert lines[2] == ("XQuAD-R: share of the top 10 in the question's language X-X-mono 80%, hybrid 50% "
                        "(no preference: 25%).")
    assert lines[3].endswith("X-X-mono 1.5 / 40.0, hybrid 3.0 / 20.0.")
    assert bias_report.conclusion(rd, summary, {"xquad_r": 4})[1] == \
        "XQuAD-R: hybrid against mono -25.0% (-50.00 ranks)."


def test_explore_conclusion_counts_languages_and_rank_distances():
    hits = pd.DataFrame({"model": ["zero-shot"] * 3 + ["hybrid"] * 3, "rank": [1, 2, 3] * 2,
                         "lang": ["de", "de", "en", "en", "de", "es"],
                         "relevant": [None] * 6})
    questions = pd.DataFrame({"qid": ["q1", "q2"], "zero-shot": [10.0, 20.0], "hybrid": [4.0, 6.0]})
    ranks = pd.DataFrame({"model": ["zero-shot"] * 2 + ["hybrid"] * 2, "same_lang": [True, False] * 2,
                          "rank": [1, 31, 2, 7]})
    lines = explore.conclusion(hits, questions, ranks, "q1")
    assert lines == [
        "Example question, languages of the top 3: zero-shot: de 2 en 1 | hybrid: en 1 de 1 es 1.",
        "Over the 2 listed questions, mean rank distance: zero-shot 15.0, hybrid 5.0 (lower: less language bias).",
        "Question q1: rank distance zero-shot 30 (own language at rank 1), hybrid 5 (own language at rank 2)."]


def test_explore_conclusion_counts_relevant_hits_of_a_dataset_question():
    hits = pd.DataFrame({"model": ["m"] * 2, "rank": [1, 2], "lang": ["de", "en"], "relevant": [True, False]})
    assert explore.conclusion(hits) == ["Example question, languages of the top 2: m: de 1 en 1; 1 relevant."]
