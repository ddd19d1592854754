"""The study's datasets as the experiments read them: retrieval sets, SQuAD tables, loaders.

Dataset names: ``xquad_r``, ``mlqa_r`` (LAReQA sentence retrieval),
``mlqa_retrieval`` (MTEB's MLQARetrieval on MLQA dev), ``mlqa_test`` and
``tydiqa`` (training pairs), ``dureader_demo`` (Chinese search paragraphs);
their languages are ``lib.data_files.LANGS``.

Files, their checksums and downloads are :mod:`lib.data_files`; every
file is read through it (checked against ``SHA256SUMS`` once per process).
Training pairs, the sentence-split report and the data overview of notebook
01 are built on top of this module in :mod:`lib.training_data`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
from pathlib import Path

import pandas as pd

from lib import data_files
from lib.data_files import FOLDERS, LANGS, check_langs, check_name, dataset_dir, read_json
from lib.errors import DataError

DURETRIEVAL_HUB = "C-MTEB/DuRetrieval"


# --------------------------------------------------------------------------
# Retrieval sets


@dataclasses.dataclass
class RetrievalSet:
    """Queries, a candidate pool and binary relevance judgements.

    ``queries``: ``qid`` (unique), ``item_id`` (shared by the language
    versions of one question), ``lang``, ``text``; ``docs``: ``doc_id``
    (unique), ``lang``, ``text``; ``qrels``: ``qid``, ``doc_id`` (relevance 1).
    """

    queries: pd.DataFrame
    docs: pd.DataFrame
    qrels: pd.DataFrame
    name: str = ""

    def __post_init__(self):
        for frame, cols, what in ((self.queries, ["qid", "item_id", "lang", "text"], "queries"),
                                  (self.docs, ["doc_id", "lang", "text"], "docs"),
                                  (self.qrels, ["qid", "doc_id"], "qrels")):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise DataError(f"RetrievalSet {self.name!r}: {what} lacks columns {missing}")
        for frame, col in ((self.queries, "qid"), (self.docs, "doc_id")):
            if frame[col].duplicated().any():
                raise DataError(f"RetrievalSet {self.name!r}: duplicate {col} values, e.g. "
                                f"{frame[col][frame[col].duplicated()].iloc[0]!r}")

    def restrict(self, query_langs=None, doc_langs=None) -> "RetrievalSet":
        """The set with queries / candidates limited to some languages (``None`` = all).

        Queries left without a relevant candidate are dropped, so
        ``restrict(["de"], ["en"])`` is the de -> en cross-lingual setting.
        """
        q = self.queries if query_langs is None else self.queries[self.queries.lang.isin(list(query_langs))]
        d = self.docs if doc_langs is None else self.docs[self.docs.lang.isin(list(doc_langs))]
        r = self.qrels[self.qrels.qid.isin(q.qid) & self.qrels.doc_id.isin(d.doc_id)]
        q = q[q.qid.isin(r.qid)]
        return RetrievalSet(q.reset_index(drop=True), d.reset_index(drop=True), r.reset_index(drop=True),
                            self.name)

    def copy(self) -> "RetrievalSet":
        return RetrievalSet(self.queries.copy(), self.docs.copy(), self.qrels.copy(), self.name)

    def __repr__(self) -> str:
        return (f"RetrievalSet({self.name!r}: {len(self.queries)} queries, {len(self.docs)} docs, "
                f"{len(self.qrels)} qrels)")

@functools.lru_cache(maxsize=128)
def _squad_table_cached(path: str, size: int, mtime: int) -> pd.DataFrame:
    doc = read_json(Path(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: expected SQuAD JSON with a top-level 'data' list of articles")
    rows = []
    par = 0
    try:
        for art_i, article in enumerate(doc["data"]):
            for para in article["paragraphs"]:
                context = para["context"]
                breaks = para.get("sentence_breaks")
                for qa in para["qas"]:
                    answers = qa.get("answers") or [{"text": "", "answer_start": -1}]
                    rows.append((art_i, article.get("title", ""), par, context, breaks, str(qa["id"]),
                                 qa["question"], int(answers[0]["answer_start"]), answers[0]["text"]))
                par += 1
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: malformed SQuAD record (missing or wrong field {exc}); expected "
                        "data[].paragraphs[].{context, qas[].{id, question, answers}}") from exc
    return pd.DataFrame(rows, columns=["article_index", "title", "paragraph", "context", "sentence_breaks",
                                       "qa_id", "question", "answer_start", "answer_text"])


def squad_table(path: Path) -> pd.DataFrame:
    """One row per question of a SQuAD-format file (cached per file version).

    Columns: ``article_index, title, paragraph`` (running index in the file),
    ``context, sentence_breaks`` (None without LAReQA splits), ``qa_id,
    question, answer_start, answer_text`` (the first answer; ``""`` when the
    file carries no answer, as in label-free test copies).
    """
    path = Path(path)
    if not path.is_file():
        read_json(path)  # raises the missing-file error
    stat = path.stat()
    return _squad_table_cached(str(path), stat.st_size, stat.st_mtime_ns)


def text_id(lang: str, text: str) -> str:
    """A stable id for a text: same language and text -> same id, in every subset."""
    return f"{lang}:{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}"


# --------------------------------------------------------------------------
# XQuAD-R / MLQA-R (LAReQA)


@functools.lru_cache(maxsize=32)
def _lareqa_lang(name: str, lang: str, root: str):
    """Questions and candidate sentences of one LAReQA language file, built as LAReQA does.

    Candidates are the sentences (``context[start:end]`` for each
    ``sentence_breaks`` pair) of every paragraph that yields a question; a
    question's answer sentence is the one whose span holds ``answer_start``
    (questions without one are skipped, as in LAReQA; none are in the files).
    """
    table = squad_table(Path(root) / FOLDERS[name] / f"{lang}.json")
    q_rows, used = [], set()
    for r in table.itertuples(index=False):
        if r.sentence_breaks is None:
            raise DataError(f"{name}/{lang}.json: paragraph {r.paragraph} lacks 'sentence_breaks'; "
                            "use LAReQA's files (see README)")
        hit = [i for i, (s, e) in enumerate(r.sentence_breaks) if s <= r.answer_start < e]
        if hit:
            q_rows.append((r.qa_id, r.question, f"{lang}:{r.paragraph}:{hit[0]}", r.paragraph))
            used.add(r.paragraph)
    questions = pd.DataFrame(q_rows, columns=["item_id", "text", "answer_doc", "paragraph"])
    paras = table.drop_duplicates("paragraph")
    d_rows = [(f"{lang}:{p.paragraph}:{i}", p.context[s:e], p.paragraph)
              for p in paras.itertuples(index=False) if p.paragraph in used
              for i, (s, e) in enumerate(p.sentence_breaks)]
    docs = pd.DataFrame(d_rows, columns=["doc_id", "text", "paragraph"])
    return questions, docs


def _item_order(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Item ids taken from the languages in turn (English first, then by code).

    Interleaving means the first N items cover every language even when items
    exist in only some languages (MLQA-R), and the order is the same whatever
    ``langs`` a caller selects.
    """
    order = ["en"] + sorted(lang for lang in frames if lang != "en")
    columns = [list(dict.fromkeys(frames[lang].item_id)) for lang in order if lang in frames]
    seen: dict[str, None] = {}
    for row in itertools.zip_longest(*columns):
        for item in row:
            if item is not None:
                seen.setdefault(item, None)
    return list(seen)


def load_lareqa(name: str, langs=None, max_items: int = 0) -> RetrievalSet:
    """XQuAD-R or MLQA-R as a pooled multilingual sentence-retrieval set.

    Queries: every question of every selected language (``qid`` =
    ``"<lang>:<id>"``); docs: every sentence of every paragraph of those
    languages (``doc_id`` = ``"<lang>:<paragraph>:<sentence>"``); a query's
    relevant docs are the answer sentences of the same item (same question
    ``id``) in each selected language where the item exists: 11 per question
    in XQuAD-R, 2-4 in MLQA-R. ``max_items`` keeps the first N items (the
    same items in every language) and the paragraphs holding their answers.
    """
    if name not in ("xquad_r", "mlqa_r"):
        check_name(name)
        raise DataError(f"load_lareqa: {name!r} is not a LAReQA dataset; use 'xquad_r' or 'mlqa_r'")
    langs = check_langs(name, langs)
    root = str(dataset_dir(name).parent)
    # max_items picks the same items in every language, so it reads every language file
    per_lang = {lang: _lareqa_lang(name, lang, root) for lang in (LANGS[name] if max_items else langs)}
    keep = None
    if max_items:
        keep = set(_item_order({lang: q for lang, (q, _) in per_lang.items()})[:max_items])
    queries, docs = [], []
    for lang in langs:
        q, d = per_lang[lang]
        if keep is not None:
            q = q[q.item_id.isin(keep)]
            d = d[d.paragraph.isin(set(q.paragraph))]
        queries.append(q.assign(lang=lang, qid=lang + ":" + q.item_id))
        docs.append(d.assign(lang=lang))
    queries = pd.concat(queries, ignore_index=True)
    docs = pd.concat(docs, ignore_index=True)
    answers = queries[["item_id", "answer_doc"]].rename(columns={"answer_doc": "doc_id"})
    qrels = queries[["qid", "item_id"]].merge(answers, on="item_id")[["qid", "doc_id"]]
    return RetrievalSet(queries[["qid", "item_id", "lang", "text"]], docs[["doc_id", "lang", "text"]],
                        qrels.reset_index(drop=True), name)


# --------------------------------------------------------------------------
# MTEB MLQARetrieval (MLQA dev, 49 subsets)


def mlqa_file(split_dir: Path, split: str, c_lang: str, q_lang: str) -> Path:
    return split_dir / f"{split}-context-{c_lang}-question-{q_lang}.json"


def _mlqa_retrieval_subset(path: Path, q_lang: str, c_lang: str, max_items: int) -> RetrievalSet:
    table = squad_table(path)
    if max_items:
        table = table.head(max_items)
    contexts = table.drop_duplicates("context")
    docs = pd.DataFrame({"doc_id": [text_id(c_lang, c) for c in contexts.context], "lang": c_lang,
                         "text": contexts.context.to_numpy()})
    queries = pd.DataFrame({"qid": q_lang + ":" + table.qa_id, "item_id": table.qa_id, "lang": q_lang,
                            "text": table.question.to_numpy()})
    qrels = pd.DataFrame({"qid": queries.qid, "doc_id": [text_id(c_lang, c) for c in table.context]})
    return RetrievalSet(queries, docs, qrels, f"mlqa_retrieval:{q_lang}-{c_lang}")


def load_mlqa_retrieval(max_items: int = 0) -> dict[tuple[str, str], RetrievalSet]:
    """The 49 subsets of MTEB's ``MLQARetrieval`` (validation = MLQA dev), keyed ``(q_lang, c_lang)``.

    As in MTEB (hub dataset ``mteb/MLQARetrieval``, built from HF ``mlqa``
    config ``mlqa.<context>.<question>``): one subset per file
    ``dev-context-<c>-question-<q>.json``; its queries are that file's
    questions, its corpus is that file's paragraphs (unique contexts; e.g.
    ``zh`` contexts with ``en`` questions: 504 queries, 443 documents, as in
    MTEB's statistics), each query has exactly one relevant document, the
    paragraph it was asked on. Document ids are :func:`text_id` of the
    context, so a paragraph has the same id in every subset. ``max_items``
    keeps the first N questions of each file.
    """
    folder = dataset_dir("mlqa_retrieval")
    langs = LANGS["mlqa_retrieval"]
    return {(q, c): _mlqa_retrieval_subset(mlqa_file(folder, "dev", c, q), q, c, max_items)
            for q in langs for c in langs}


# --------------------------------------------------------------------------
# DuReader


@functools.lru_cache(maxsize=4)
def _dureader_rows(root: str) -> tuple[list, list]:
    folder = Path(root)
    labelled, pool = [], []
    for split in ("dev", "train", "test"):
        for rec in read_json(folder / f"search.{split}.json", lines=True):
            try:
                qid, question, documents = str(rec["question_id"]), rec["question"], rec["documents"]
                relevant = []
                for doc in documents:
                    paras = [p.strip() for p in doc["paragraphs"]]
                    pool.append((split, qid, paras))
                    mrp = doc.get("most_related_para", -1)
                    if doc.get("is_selected") and 0 <= mrp < len(paras) and paras[mrp]:
                        relevant.append(paras[mrp])
            except (KeyError, TypeError) as exc:
                raise DataError(f"{folder / f'search.{split}.json'}: malformed DuReader record (field {exc})") from exc
            if split != "test" and relevant:
                labelled.append((qid, question, relevant))
    return labelled, pool


def load_dureader(source: str = "demo", max_items: int = 0) -> RetrievalSet:
    """DuReader as a Chinese paragraph-retrieval set.

    ``source="demo"`` (offline): the DuReader 2.0 demo files. Queries = the
    dev and train questions with at least one ``is_selected`` document
    (196); the pool = every non-empty paragraph of every document of the
    dev, train and test files, identical texts merged into one candidate
    (``doc_id`` = :func:`text_id`, so an identical copy of a relevant
    paragraph is never a false negative); relevant = the
    ``most_related_para`` of each selected document. ``max_items`` keeps the
    first N questions and only their own documents' paragraphs.
    ``source="hub"``: MTEB's ``C-MTEB/DuRetrieval`` (dev qrels), needs network.
    """
    if source == "hub":
        return _load_duretrieval_hub(max_items)
    if source != "demo":
        raise DataError(f"load_dureader: source={source!r}; use 'demo' (offline files) or 'hub'")
    labelled, pool = _dureader_rows(str(dataset_dir("dureader_demo")))
    if max_items:
        labelled = labelled[:max_items]
        wanted = {qid for qid, _, _ in labelled}
        pool = [row for row in pool if row[1] in wanted]
    texts = dict.fromkeys(p for _, _, paras in pool for p in paras if p)
    docs = pd.DataFrame({"doc_id": [text_id("zh", t) for t in texts], "lang": "zh", "text": list(texts)})
    queries = pd.DataFrame([("zh:" + qid, qid, "zh", q) for qid, q, _ in labelled],
                           columns=["qid", "item_id", "lang", "text"])
    qrels = pd.DataFrame([("zh:" + qid, text_id("zh", p)) for qid, _, rel in labelled for p in rel],
                         columns=["qid", "doc_id"]).drop_duplicates(ignore_index=True)
    return RetrievalSet(queries, docs, qrels, "dureader_demo")


def _load_duretrieval_hub(max_items: int = 0) -> RetrievalSet:
    """``C-MTEB/DuRetrieval`` from the Hugging Face hub (corpus, queries, dev qrels)."""
    try:
        import datasets
        data = datasets.load_dataset(DURETRIEVAL_HUB)
        qrels = datasets.load_dataset(DURETRIEVAL_HUB + "-qrels")["dev"]
    except Exception as exc:  # network, hub or cache failure: all mean "not available here"
        raise DataError(f"could not load {DURETRIEVAL_HUB} from the Hugging Face hub ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); it needs network access. Offline, "
                        "use load_dureader(source='demo')") from exc
    qrels = pd.DataFrame({"qid": "zh:" + pd.Series(qrels["qid"], dtype=str),
                          "doc_id": "zh:" + pd.Series(qrels["pid"], dtype=str)})
    queries = pd.DataFrame({"item_id": pd.Series(data["queries"]["id"], dtype=str),
                            "text": data["queries"]["text"]})
    queries = queries.assign(qid="zh:" + queries.item_id, lang="zh")
    queries = queries[queries.qid.isin(qrels.qid)]
    if max_items:
        queries = queries.head(max_items)
        qrels = qrels[qrels.qid.isin(queries.qid)]
    docs = pd.DataFrame({"doc_id": "zh:" + pd.Series(data["corpus"]["id"], dtype=str), "lang": "zh",
                         "text": data["corpus"]["text"]})
    return RetrievalSet(queries[["qid", "item_id", "lang", "text"]].reset_index(drop=True), docs,
                        qrels.reset_index(drop=True), "dureader_hub")


# --------------------------------------------------------------------------
# Summaries (notebook 01)


def _count_rows(dataset: str, split: str, role: str, frame: pd.DataFrame, q_col=None, d_col=None) -> list:
    keys = [c for c in (q_col, d_col) if c]
    sizes = frame.groupby(keys).size() if keys else pd.Series({(): len(frame)})
    rows = []
    for key, count in sizes.items():
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(keys, key))
        rows.append((dataset, split, role, values.get(q_col, ""), values.get(d_col, ""), int(count)))
    return rows


def token_lengths(texts: pd.DataFrame, tokenizer, batch_size: int = 2048) -> pd.DataFrame:
    """``texts`` with a ``tokens`` column: the tokenizer's length, special tokens included."""
    counts = []
    for start in range(0, len(texts), batch_size):
        chunk = texts.text.iloc[start:start + batch_size].tolist()
        counts += [len(ids) for ids in tokenizer(chunk, add_special_tokens=True, verbose=False)["input_ids"]]
    return texts.assign(tokens=counts)


def lareqa_examples(name: str = "xquad_r", item: int = 0, langs=None) -> pd.DataFrame:
    """One item of XQuAD-R / MLQA-R in each language: ``lang, question, answer_sentence``."""
    rs = load_lareqa(name, langs)
    item_id = _item_order({"en": rs.queries})[item]
    q = rs.queries[rs.queries.item_id == item_id]
    answers = rs.qrels.merge(rs.docs, on="doc_id").merge(q[["qid", "lang"]], on=["qid", "lang"])
    return (q.merge(answers[["qid", "text"]].rename(columns={"text": "answer_sentence"}), on="qid")
            .rename(columns={"text": "question"})[["lang", "question", "answer_sentence"]]
            .reset_index(drop=True))

def clear_caches() -> None:
    """Forget parsed files and verified checksums (tests, or after replacing files); the training
    pairs' cache too: :func:`lib.training_data.clear_caches`."""
    data_files.clear_caches()
    _squad_table_cached.cache_clear()
    _lareqa_lang.cache_clear()
    _dureader_rows.cache_clear()
