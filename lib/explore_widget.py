"""The explorer's front end for people (notebook 08): the rank picture of one question and an ipywidgets panel.

:func:`plot_question_ranks` draws :func:`lib.explore.question_ranks`;
:func:`widget` puts :mod:`lib.explore`'s views behind JupyterLab controls.
The views themselves (tables, no plotting) are :mod:`lib.explore`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib.errors import ConfigError
from lib.evaluation import DATASETS
from lib.explore import (Explorer, explore_profiles, model_table, open_explorer, question_ranks, question_table,
                         rank_summary, search, side_by_side)
from lib.notebook import profile_values


def plot_question_ranks(ranks: pd.DataFrame, ax=None, title: str | None = None):
    """Each model one row, each relevant candidate a labelled dot at its rank (log scale); the
    same-language candidate in red. The spread of a row is the question's rank distance."""
    order = list(dict.fromkeys(ranks["model"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.7 * len(order) + 1.4))
    for y, name in enumerate(order):
        part = ranks[ranks["model"] == name]
        ax.plot([part["rank"].min(), part["rank"].max()], [y, y], color="0.8", lw=6, zorder=1,
                solid_capstyle="round")
        colors = np.where(part["same_lang"], "tab:red", "tab:blue")
        ax.scatter(part["rank"], np.full(len(part), y), c=colors, s=28, zorder=2)
        for (_, r), dy in zip(part.iterrows(), np.resize([0.22, -0.32], len(part))):
            ax.annotate(r["lang"], (r["rank"], y + dy), ha="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.4, -0.6)
    ax.set_xlabel("rank of the relevant candidate in the pool (1 = top; log scale)")
    ax.set_title(title or "Ranks of the relevant candidates (red: the question's language); "
                 "grey bar = rank distance", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


# --------------------------------------------------------------------------
# Widgets


def _settings(profile: str, current: dict) -> dict:
    """backbone / num_layers / max_items of ``profile`` as the runner would give notebook 08 (its
    YAML in configs/), else ``current``."""
    try:
        _, values, _ = profile_values(profile, "08_explore")
    except ConfigError:
        return dict(current)
    return {k: values.get(k, v) for k, v in current.items()}


def _left(frame: pd.DataFrame):
    """Left-aligned text cells (pandas right-aligns them in HTML)."""
    return frame.style.set_properties(**{"text-align": "left"}).set_table_styles(
        [{"selector": "th", "props": [("text-align", "left")]}])


def widget(ex: Explorer, *, backbone: str = "embedded", num_layers: int = 0, k: int = 10,
           question: str = ""):
    """An ipywidgets panel over ``lib.explore.search`` and ``question_ranks`` (needs ``ipywidgets``).

    Controls: profile (folders under results/), dataset, models, candidate
    languages, k; tab *Ask*: a question typed in any language; tab *Dataset
    question*: a question language and one of its questions, listed by
    rank distance. Returns the panel; its ``explorer`` attribute holds the
    current ``lib.explore.Explorer``.
    """
    import ipywidgets as W  # optional: only the interactive panel needs ipywidgets
    from IPython.display import display

    last: dict[str, pd.DataFrame] = {}  # the tables shown last (tests read them)
    state = {"ex": ex, "settings": {"backbone": backbone, "num_layers": num_layers, "max_items": ex.max_items}}
    profiles = explore_profiles()
    if ex.profile not in profiles:
        profiles = [ex.profile] + profiles
    w_profile = W.Dropdown(options=profiles, value=ex.profile, description="profile")
    w_dataset = W.Dropdown(options=list(DATASETS), value=ex.dataset, description="pool")
    w_models = W.SelectMultiple(description="models", rows=5)
    w_langs = W.SelectMultiple(description="candidates", rows=5)
    w_k = W.IntSlider(value=k, min=1, max=50, description="top k")
    w_status = W.HTML()
    w_question = W.Text(value=question, placeholder="a question in any language", description="question",
                        continuous_update=False, layout=W.Layout(width="70%"))
    w_go = W.Button(description="search", button_style="primary")
    w_qlang = W.Dropdown(description="question lang")
    w_qid = W.Dropdown(description="question", layout=W.Layout(width="90%"))
    out_ask, out_q = W.Output(), W.Output()

    def chosen_langs():
        return list(w_langs.value) or None

    def refresh_controls():
        cur = state["ex"]
        table = model_table(cur.profile, state["settings"]["backbone"], state["settings"]["num_layers"])
        w_models.options = table["model"].tolist()
        w_models.value = tuple(n for n in cur.names if n in w_models.options)
        w_langs.options = cur.doc_langs
        w_langs.value = ()
        w_qlang.options = cur.query_langs
        w_qlang.value = "en" if "en" in cur.query_langs else cur.query_langs[0]
        w_status.value = (f"<b>{cur.profile}</b> / {cur.dataset}: {len(cur.lay.queries)} questions, "
                          f"{len(cur.lay.docs)} candidates, models {', '.join(cur.names)}")

    def reopen(*_):
        w_status.value = "loading ..."
        settings = _settings(w_profile.value, state["settings"]) if w_profile.value != state["ex"].profile \
            else state["settings"]
        names = [m for m in w_models.value] if w_profile.value == state["ex"].profile else ""
        try:
            state["ex"] = open_explorer(w_profile.value, w_dataset.value, models=names, **settings)
            state["settings"] = settings
        except Exception as exc:  # shown in the panel, not raised into the widget's callback
            w_status.value = f"<span style='color:red'>{exc}</span>"
            return
        refresh_controls()
        list_questions()
        ask()

    def ask(*_):
        out_ask.clear_output()
        with out_ask:
            if w_question.value.strip():
                last["ask"] = side_by_side(search(state["ex"], w_question.value, w_k.value, chosen_langs()))
                display(_left(last["ask"]))

    def list_questions(*_):
        table = question_table(state["ex"], [w_qlang.value], chosen_langs())
        first = state["ex"].names[0]
        w_qid.options = [(f"{qid} | rank distance {rd:.0f} | {text[:70]}", qid)
                         for qid, rd, text in zip(table["qid"], table[first], table["text"])]
        top = w_qid.options[0][1] if w_qid.options else None
        if top is None or w_qid.value == top:
            show_question()
        else:
            w_qid.value = top  # its observer shows it

    def show_question(*_):
        out_q.clear_output()
        if not w_qid.value:
            return
        with out_q:
            ranks = question_ranks(state["ex"], w_qid.value, chosen_langs())
            last["question"] = rank_summary(ranks)
            display(last["question"])
            plot_question_ranks(ranks)
            plt.show()
            display(_left(side_by_side(search(state["ex"], w_qid.value, w_k.value, chosen_langs()))))

    refresh_controls()
    w_go.on_click(ask)
    w_question.observe(ask, "value")  # continuous_update=False: on Enter or leaving the field
    w_qlang.observe(list_questions, "value")
    w_qid.observe(show_question, "value")
    w_profile.observe(reopen, "value")
    w_dataset.observe(reopen, "value")
    apply = W.Button(description="apply", tooltip="reopen with the chosen models and candidate languages")
    apply.on_click(reopen)
    tabs = W.Tab(children=[W.VBox([W.HBox([w_question, w_go]), out_ask]),
                           W.VBox([w_qlang, w_qid, out_q])])
    tabs.set_title(0, "Ask")
    tabs.set_title(1, "Dataset question")
    panel = W.VBox([W.HBox([w_profile, w_dataset, w_k]), W.HBox([w_models, w_langs, apply]), w_status, tabs])
    panel.explorer = lambda: state["ex"]
    panel.controls = {"profile": w_profile, "dataset": w_dataset, "models": w_models, "langs": w_langs,
                      "k": w_k, "question": w_question, "search": w_go, "question_lang": w_qlang,
                      "question_id": w_qid, "apply": apply}
    panel.outputs = {"ask": out_ask, "question": out_q}
    panel.last = last
    list_questions()
    ask()
    return panel

