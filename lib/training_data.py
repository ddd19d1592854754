"""Training pairs (question -> passage) from MLQA test and TyDi QA, and how well the splitter does.

``load_training_pairs`` builds the pairs the strategies sample from; the
sentence splitter is :mod:`lib.sentences`. ``data_summary``,
``parallelism`` and ``text_samples`` describe every dataset of the study
for notebook 01.
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import pandas as pd

from lib.data import (_count_rows, clear_caches as _clear_data_caches, load_dureader, load_lareqa, load_mlqa_retrieval,
                      mlqa_file, squad_table)
from lib.data_files import FOLDERS, LANGS, data_dir, dataset_dir
from lib.errors import ConfigError, DataError
from lib.sentences import answer_sentence, sentence_spans

# --------------------------------------------------------------------------
# Training pairs: question -> the passage sentence that holds its answer

VAL_FRACTION = 0.05  # share of articles held out for validation (checkpoint choice)
POSITIVES = ("auto", "sentence", "paragraph")
PAIR_COLUMNS = ["dataset", "item_id", "article", "query_lang", "doc_lang", "query", "passage", "split",
                "positive"]


def is_val_article(article: str) -> bool:
    """Deterministic held-out choice: about ``VAL_FRACTION`` of articles, by a hash of the article key."""
    bucket = int(hashlib.sha1(article.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < VAL_FRACTION * 10_000


def _article_keys(nodes_by_item: dict[str, list[str]], prefix: str) -> dict[str, str]:
    """Group items that share a title or a passage (in any language) into one article key.

    A union-find over items: two items sharing any node (``lang|title`` or
    ``lang|passage hash``) belong to the same article, so no article, and
    no passage, ends up in both the train and the val split.
    """
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for nodes in nodes_by_item.values():
        for a, b in zip(nodes, nodes[1:]):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {item: f"{prefix}:{hashlib.sha1(find(nodes[0]).encode()).hexdigest()[:12]}"
            for item, nodes in nodes_by_item.items()}


def _article_node(lang: str, title: str, context: str) -> str:
    if title:
        return f"{lang}|t|{title}"
    return f"{lang}|c|{hashlib.sha1(context.encode('utf-8')).hexdigest()}"


def _clean_question(text: str) -> str:
    return re.sub(r"(\\n)+$", "", text.strip()).strip()


def _locate(contexts: pd.DataFrame) -> pd.DataFrame:
    """Add ``sentence`` (the answer sentence, or None) and ``status`` to passages with answers.

    ``status``: ``gold`` (found), ``crossing`` (the answer spans a sentence
    boundary), ``not_found`` (offset outside the passage or not matching the
    answer text), ``unlabelled`` (the file has no answer, as in label-free
    test copies).
    """
    cache: dict[str, list[tuple[int, int]]] = {}
    sentences, status = [], []
    for ctx, start, answer in zip(contexts.context, contexts.answer_start, contexts.answer_text):
        if not answer:
            sentences.append(None)
            status.append("unlabelled")
            continue
        spans = cache.get(ctx)
        if spans is None:
            spans = cache[ctx] = sentence_spans(ctx)
        idx = None
        if 0 <= start and ctx[start:start + len(answer)] == answer:
            idx = answer_sentence(spans, start, len(answer))
            status.append("gold" if idx is not None else "crossing")
        else:
            status.append("not_found")
        sentences.append(ctx[spans[idx][0]:spans[idx][1]] if idx is not None else None)
    return contexts.assign(sentence=sentences, status=status)


def _mlqa_test_folder() -> Path:
    base = dataset_dir("mlqa_test")
    for sub in ("test", "test_partial"):  # the complete official test set first
        if any((base / sub).glob("test-context-*-question-*.json")):
            return base / sub
    raise DataError(f"mlqa_test: no test-context-<c>-question-<q>.json files in {base / 'test'} or "
                    f"{base / 'test_partial'}; copy them from the mirror or run lib.data_files.download('mlqa_test')")


def _mlqa_test_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Questions (item, lang, text) and passages (item, lang, context, answer...) of MLQA test."""
    folder = _mlqa_test_folder()
    frames = []
    for path in sorted(folder.glob("test-context-*-question-*.json")):
        m = re.fullmatch(r"test-context-(\w+)-question-(\w+)\.json", path.name)
        if not m or m[1] not in LANGS["mlqa_test"] or m[2] not in LANGS["mlqa_test"]:
            raise DataError(f"{path}: unexpected MLQA file name; expected test-context-<c>-question-<q>.json "
                            f"with languages in {LANGS['mlqa_test']}")
        frames.append(squad_table(path).assign(c_lang=m[1], q_lang=m[2]))
    table = pd.concat(frames, ignore_index=True)
    questions = table.drop_duplicates(["qa_id", "q_lang"])[["qa_id", "q_lang", "question"]]
    labelled_first = table.assign(unl=table.answer_text.eq("")).sort_values("unl", kind="stable")
    passages = labelled_first.drop_duplicates(["qa_id", "c_lang"])
    passages = passages[["qa_id", "c_lang", "title", "context", "answer_start", "answer_text"]]
    order = {item: i for i, item in enumerate(dict.fromkeys(table.qa_id))}
    return questions, passages.assign(order=passages.qa_id.map(order)).sort_values(["order", "c_lang"])


def _tydiqa_tables() -> pd.DataFrame:
    """TyDi GoldP passages with their single question: one row per item."""
    base = dataset_dir("tydiqa")
    frames = []
    for sub in ("dev", "train" if (base / "train").is_dir() else "train_partial"):
        for path in sorted((base / sub).glob("tydiqa.goldp.*.json")):
            lang = path.name.split(".")[2]
            if lang not in LANGS["tydiqa"]:
                raise DataError(f"{path}: unknown TyDi language {lang!r}; valid codes: {LANGS['tydiqa']}")
            table = squad_table(path).assign(c_lang=lang, q_lang=lang)
            if table.qa_id.duplicated().any():  # XTREME's train copies number questions per article
                table = table.assign(qa_id=[f"tydiqa-{lang}-{sub}-{k}" for k in range(len(table))])
            frames.append(table)
    if not frames:
        raise DataError(f"tydiqa: no tydiqa.goldp.<lang>.<split>.json files under {base}/dev or {base}/train; "
                        "copy them from the mirror or run lib.data_files.download('tydiqa')")
    return pd.concat(frames, ignore_index=True).drop_duplicates("qa_id")


def _pairs(dataset: str, questions: pd.DataFrame, passages: pd.DataFrame, positive: str) -> pd.DataFrame:
    passages = _locate(passages)
    if positive == "sentence":
        passages = passages[passages.status == "gold"]
    else:
        passages = passages[passages.status.isin(["gold", "unlabelled"])]
    if positive == "paragraph":
        passages = passages.assign(passage=passages.context, positive="paragraph")
    else:
        gold = passages.status == "gold"
        passages = passages.assign(passage=passages.sentence.where(gold, passages.context),
                                   positive=gold.map({True: "sentence", False: "paragraph"}))
    nodes: dict[str, list[str]] = {}
    for item, lang, title, ctx in zip(passages.qa_id, passages.c_lang, passages.title, passages.context):
        nodes.setdefault(item, []).append(_article_node(lang, title, ctx))
    articles = _article_keys(nodes, dataset)
    pairs = questions.merge(passages, on="qa_id")
    return pd.DataFrame({
        "dataset": dataset, "item_id": pairs.qa_id, "article": pairs.qa_id.map(articles),
        "query_lang": pairs.q_lang, "doc_lang": pairs.c_lang, "query": pairs.question.map(_clean_question),
        "passage": pairs.passage, "split": pairs.qa_id.map(articles).map(is_val_article).map({True: "val",
                                                                                            False: "train"}),
        "positive": pairs.positive})


def _cap(pairs: pd.DataFrame, max_items: int, by: list[str]) -> pd.DataFrame:
    """First ``max_items`` train items and ``max(2, max_items // 10)`` val items per group."""
    keep = set()
    for _, group in pairs.groupby(by + ["split"], sort=False):
        n = max_items if group.split.iloc[0] == "train" else max(2, max_items // 10)
        keep.update(list(dict.fromkeys(group.item_id))[:n])
    return pairs[pairs.item_id.isin(keep)]


@functools.lru_cache(maxsize=4)
def _training_pairs(root: str, positive: str) -> pd.DataFrame:  # root: cache key only
    questions, passages = _mlqa_test_tables()
    mlqa = _pairs("mlqa_test", questions, passages, positive)
    tydi = _tydiqa_tables()
    tydi_q = tydi[["qa_id", "q_lang", "question"]]
    tydi_p = tydi[["qa_id", "c_lang", "title", "context", "answer_start", "answer_text"]]
    tydi = _pairs("tydiqa", tydi_q, tydi_p, positive)
    return pd.concat([mlqa, tydi], ignore_index=True)[PAIR_COLUMNS]


def load_training_pairs(max_items: int = 0, positive: str = "auto") -> pd.DataFrame:
    """Question -> positive-passage pairs from MLQA test (parallel) and TyDi QA GoldP (monolingual).

    MLQA: every item's question in each available language is paired with
    its passage in each available language (same-language pairs included).
    TyDi: each question with its own passage. The positive (``passage``) is
    the sentence of the passage that holds the answer (``positive ==
    "sentence"``); items whose answer crosses a sentence boundary are
    dropped (see :func:`sentence_split_report`). The offline mirror's MLQA
    test and TyDi dev copies carry no answers, so their answer sentence is
    unknown: ``positive="auto"`` (default) then uses the whole passage
    (``positive == "paragraph"``), ``"sentence"`` drops them, ``"paragraph"``
    uses whole passages everywhere. ``split``: ``val`` for about 5% of the
    articles (a hash of the article key; items sharing a title or a passage
    form one article), ``train`` for the rest. ``max_items`` keeps the first
    N train items (and max(2, N // 10) val items) per dataset, and per
    language for TyDi.
    """
    if positive not in POSITIVES:
        raise ConfigError(f"positive={positive!r}: use one of {POSITIVES}")
    pairs = _training_pairs(str(data_dir()), positive)
    if max_items:
        mlqa = pairs[pairs.dataset == "mlqa_test"]
        tydi = pairs[pairs.dataset == "tydiqa"]
        pairs = pd.concat([_cap(mlqa, max_items, ["dataset"]), _cap(tydi, max_items, ["dataset", "doc_lang"])])
    return pairs.reset_index(drop=True).copy()


# --------------------------------------------------------------------------
# How well the splitter serves the training data


def _report_rows(dataset: str, passages: pd.DataFrame) -> list[dict]:
    located = _locate(passages)
    rows = []
    for lang, group in located.groupby("c_lang"):
        counts = group.status.value_counts()
        labelled = int(len(group) - counts.get("unlabelled", 0))
        lost = int(counts.get("crossing", 0) + counts.get("not_found", 0))
        rows.append({"dataset": dataset, "lang": lang, "passages": len(group), "labelled": labelled,
                     "crossing": int(counts.get("crossing", 0)), "not_found": int(counts.get("not_found", 0)),
                     "lost_pct": round(100 * lost / labelled, 2) if labelled else float("nan")})
    return rows


def sentence_split_report() -> pd.DataFrame:
    """How often the splitter loses the answer sentence, per dataset and passage language.

    One row per (dataset, lang): ``passages`` (item x passage language),
    ``labelled`` (with an answer span), ``crossing`` (answer crosses a
    sentence boundary), ``not_found`` (offset does not match the answer
    text), ``lost_pct`` = 100 * (crossing + not_found) / labelled; lost
    items are dropped from the training pairs. ``mlqa_dev`` (the MLQA dev
    passages, all seven languages) stands in for MLQA test, whose mirror
    copy has no answers.
    """
    _, mlqa_passages = _mlqa_test_tables()
    rows = _report_rows("mlqa_test", mlqa_passages)
    dev = data_dir() / FOLDERS["mlqa_retrieval"]
    if dev.is_dir():  # the proxy needs MLQA dev; reported when present
        dev_passages = pd.concat([squad_table(mlqa_file(dev, "dev", c, c)).assign(c_lang=c)
                                  for c in LANGS["mlqa_retrieval"]], ignore_index=True)
        rows += _report_rows("mlqa_dev", dev_passages)
    rows += _report_rows("tydiqa", _tydiqa_tables())
    return pd.DataFrame(rows)


def lareqa_split_agreement() -> pd.DataFrame:
    """Boundary agreement of this splitter with LAReQA's own splits (XQuAD-R, MLQA-R).

    ``precision``: share of our sentence ends that LAReQA also has;
    ``recall``: share of LAReQA's that we have; ``same_paragraphs``: share
    of paragraphs split identically (trailing whitespace ignored).
    """
    rows = []
    for name in ("xquad_r", "mlqa_r"):
        folder = dataset_dir(name)
        for lang in LANGS[name]:
            paras = squad_table(folder / f"{lang}.json").drop_duplicates("paragraph")
            ours_n = theirs_n = both = same = 0
            for ctx, breaks in zip(paras.context, paras.sentence_breaks):
                ours = {e for _, e in sentence_spans(ctx)}
                theirs = {len(ctx[:e].rstrip()) for _, e in breaks}
                ours_n, theirs_n, both = ours_n + len(ours), theirs_n + len(theirs), both + len(ours & theirs)
                same += ours == theirs
            rows.append({"dataset": name, "lang": lang, "paragraphs": len(paras),
                         "precision": round(both / ours_n, 3), "recall": round(both / theirs_n, 3),
                         "same_paragraphs": round(same / len(paras), 3)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# What the study's data look like (notebook 01)


def data_summary() -> pd.DataFrame:
    """Sizes of the full datasets: ``dataset, split, role, query_lang, doc_lang, count``.

    ``role``: ``question`` / ``candidate`` for the evaluation sets (split
    ``eval``; MLQARetrieval per question-language x context-language
    subset, both languages given), ``pair`` for the training pairs (split
    ``train`` / ``val``, per query x passage language). Empty string where a
    language does not apply.
    """
    rows = []
    for name in ("xquad_r", "mlqa_r"):
        rs = load_lareqa(name)
        rows += _count_rows(name, "eval", "question", rs.queries, q_col="lang")
        rows += _count_rows(name, "eval", "candidate", rs.docs, d_col="lang")
    for (q, c), rs in load_mlqa_retrieval().items():
        rows.append(("mlqa_retrieval", "eval", "question", q, c, len(rs.queries)))
        rows.append(("mlqa_retrieval", "eval", "candidate", q, c, len(rs.docs)))
    pairs = load_training_pairs()
    for name in ("mlqa_test", "tydiqa"):
        sub = pairs[pairs.dataset == name]
        for split in ("train", "val"):
            rows += _count_rows(name, split, "pair", sub[sub.split == split], "query_lang", "doc_lang")
    rs = load_dureader()
    rows += _count_rows("dureader_demo", "eval", "question", rs.queries, q_col="lang")
    rows += _count_rows("dureader_demo", "eval", "candidate", rs.docs, d_col="lang")
    return pd.DataFrame(rows, columns=["dataset", "split", "role", "query_lang", "doc_lang", "count"])


def parallelism() -> pd.DataFrame:
    """For how many languages each item exists: ``dataset, side, k, items``.

    ``side`` is ``question`` (languages with the question) or ``passage``
    (languages with a passage); MLQA test is counted on the training pairs.
    """
    frames = []
    for name in ("xquad_r", "mlqa_r"):
        rs = load_lareqa(name)
        frames.append(rs.queries.groupby("item_id").lang.nunique().rename("k").to_frame()
                      .assign(dataset=name, side="question"))
    mlqa = load_training_pairs().query("dataset == 'mlqa_test'")
    for side, col in (("question", "query_lang"), ("passage", "doc_lang")):
        frames.append(mlqa.groupby("item_id")[col].nunique().rename("k").to_frame()
                      .assign(dataset="mlqa_test", side=side))
    k = pd.concat(frames)
    return k.groupby(["dataset", "side", "k"]).size().rename("items").reset_index()


def text_samples(max_items: int = 0, seed: int = 0) -> pd.DataFrame:
    """The texts of every dataset as ``dataset, role, lang, text`` (unique texts per group).

    Roles: ``question``, ``candidate`` (evaluation pools), ``passage:sentence``
    / ``passage:paragraph`` (training positives). ``max_items`` > 0 keeps a
    seeded sample of at most that many texts per (dataset, role, lang).
    """
    frames = []
    for name in ("xquad_r", "mlqa_r"):
        rs = load_lareqa(name)
        frames += [rs.queries.assign(dataset=name, role="question"), rs.docs.assign(dataset=name, role="candidate")]
    for (q, c), rs in load_mlqa_retrieval().items():
        if q == c:
            frames += [rs.queries.assign(dataset="mlqa_retrieval", role="question"),
                       rs.docs.assign(dataset="mlqa_retrieval", role="candidate")]
    pairs = load_training_pairs()
    frames.append(pairs.rename(columns={"query": "text", "query_lang": "lang"}).assign(role="question"))
    frames.append(pairs.rename(columns={"passage": "text", "doc_lang": "lang"})
                  .assign(role="passage:" + pairs.positive))
    rs = load_dureader()
    frames += [rs.queries.assign(dataset="dureader_demo", role="question"),
               rs.docs.assign(dataset="dureader_demo", role="candidate")]
    texts = pd.concat([f[["dataset", "role", "lang", "text"]] for f in frames], ignore_index=True)
    texts = texts.drop_duplicates(ignore_index=True)
    if max_items:
        texts = texts.sample(frac=1.0, random_state=seed).groupby(["dataset", "role", "lang"]).head(max_items)
    return texts.reset_index(drop=True)


def clear_caches() -> None:
    """Forget parsed files, verified checksums and built training pairs."""
    _clear_data_caches()
    _training_pairs.cache_clear()
