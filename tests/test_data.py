"""Data layer: error handling on synthetic files, the splitter, and counts on the real mirror."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lib import data, data_files
from lib import training_data
from lib.errors import DataError
from lib.sentences import answer_sentence, sentence_spans, split_sentences

MIRROR_OK = (data_files.MIRROR_DIR / "xquad_r" / "en.json").is_file()
needs_mirror = pytest.mark.skipif(not MIRROR_OK, reason=f"data mirror not found at {data_files.MIRROR_DIR}")


# --------------------------------------------------------------------------
# Tiny synthetic SQuAD / LAReQA files


def _lareqa_paragraph(lang: str, item: str) -> dict:
    """Two sentences; the answer ('answer-<lang>') is in the second one."""
    s1 = f"First {lang} sentence about {item}."
    s2 = f"The answer-{lang} is here."
    context = f"{s1} {s2}"
    start = context.index("answer-")
    return {"context": context, "sentence_breaks": [[0, len(s1)], [len(s1) + 1, len(context)]],
            "qas": [{"id": item, "question": f"{lang} question {item}?",
                     "answers": [{"text": f"answer-{lang}", "answer_start": start}]}]}


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_root(tmp_path, monkeypatch):
    """A data folder with a 3-item XQuAD-R in all 11 languages; HBT_DATA_DIR points to it."""
    for lang in data.LANGS["xquad_r"]:
        paras = [_lareqa_paragraph(lang, item) for item in ("q1", "q2", "q3")]
        _write_json(tmp_path / "xquad_r" / f"{lang}.json", {"data": [{"title": "T", "paragraphs": paras}]})
    monkeypatch.setenv("HBT_DATA_DIR", str(tmp_path))
    return tmp_path


def _write_sums(root: Path, files: dict[str, str]) -> None:
    (root / data_files.CHECKSUM_FILE).write_text("".join(f"{h}  ./{rel}\n" for rel, h in files.items()))


def test_synthetic_lareqa_pool_and_qrels(tiny_root):
    rs = data.load_lareqa("xquad_r")
    assert len(rs.queries) == 3 * 11 and len(rs.docs) == 2 * 3 * 11
    per_query = rs.qrels.groupby("qid").size()
    assert (per_query == 11).all()
    # every relevant doc is the answer sentence of the same item, in some language
    joined = rs.qrels.merge(rs.docs, on="doc_id").merge(rs.queries[["qid", "item_id"]], on="qid")
    assert joined.text.str.startswith("The answer-").all()
    assert joined.groupby("qid").lang.nunique().eq(11).all()
    assert set(rs.queries.qid) >= {"en:q1", "th:q3"} and "de:1:1" in set(rs.docs.doc_id)


def test_lareqa_langs_and_max_items(tiny_root):
    rs = data.load_lareqa("xquad_r", langs=["de", "zh"], max_items=2)
    assert set(rs.queries.lang) == {"de", "zh"} and set(rs.queries.item_id) == {"q1", "q2"}
    assert len(rs.docs) == 2 * 2 * 2  # two paragraphs of two sentences per language
    assert rs.qrels.groupby("qid").size().eq(2).all()
    cross = rs.restrict(["de"], ["zh"])
    assert set(cross.docs.lang) == {"zh"} and cross.qrels.groupby("qid").size().eq(1).all()


def test_unknown_language_lists_valid_codes(tiny_root):
    with pytest.raises(DataError, match=r"unknown language.*'xx'.*valid codes: ar, de, el"):
        data.load_lareqa("xquad_r", langs=["de", "xx"])


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match=r"unknown dataset 'squad'.*xquad_r, mlqa_r, mlqa_retrieval"):
        data.load_lareqa("squad")
    with pytest.raises(DataError, match="not a LAReQA dataset"):
        data.load_lareqa("tydiqa")


def test_missing_data_dir_names_path_and_fix(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("HBT_DATA_DIR", str(missing))
    with pytest.raises(DataError, match=r"nowhere.*no such folder.*HBT_DATA_DIR"):
        data_files.data_dir()


def test_missing_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HBT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"mlqa_r: missing folder .*mlqa_r.*HBT_DATA_DIR"):
        data.load_lareqa("mlqa_r")


def test_corrupted_file_fails_checksum(tiny_root):
    good = (tiny_root / "xquad_r" / "en.json").read_bytes()
    sums = {f"xquad_r/{lang}.json": hashlib.sha256((tiny_root / "xquad_r" / f"{lang}.json").read_bytes())
            .hexdigest() for lang in data.LANGS["xquad_r"]}
    _write_sums(tiny_root, sums)
    assert data_files.verify_all().ok.all()
    (tiny_root / "xquad_r" / "en.json").write_bytes(good[: len(good) // 2])  # truncated copy
    with pytest.raises(DataError, match=r"en\.json is corrupt or truncated.*Re-copy"):
        data.load_lareqa("xquad_r", langs=["en"])
    report = data_files.verify_all()
    assert report.set_index("file").loc["xquad_r/en.json", "ok"] == False  # noqa: E712
    assert report.ok.sum() == 10


def test_truncated_json_without_checksums(tiny_root):
    path = tiny_root / "xquad_r" / "de.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DataError, match=r"de\.json is not valid JSON.*truncated or corrupt"):
        data.load_lareqa("xquad_r", langs=["de"])


def test_malformed_record_names_the_field(tiny_root):
    _write_json(tiny_root / "xquad_r" / "el.json", {"data": [{"paragraphs": [{"qas": []}]}]})
    with pytest.raises(DataError, match=r"el\.json: malformed SQuAD record.*'context'"):
        data.load_lareqa("xquad_r", langs=["el"])


# --------------------------------------------------------------------------
# Training pairs from a synthetic MLQA test / TyDi layout


def _qa_file(path: Path, items: list[tuple[str, str, str, str]]):
    """items: (id, question, context, answer) -> SQuAD file; answer '' = label-free copy."""
    arts = [{"paragraphs": [{"context": ctx, "qas": [{
        "id": i, "question": q, "answers": [{"text": a, "answer_start": ctx.find(a) if a else 0}]}]}]}
        for i, q, ctx, a in items]
    _write_json(path, {"data": arts})


@pytest.fixture
def tiny_training_root(tmp_path, monkeypatch):
    ctx = {"de": "Erster Satz. Die Antwort ist Berlin. Letzter Satz.",
           "es": "Primera frase. La respuesta es Berlín. Última frase.",
           "zh": "第一句。答案是柏林。最后一句。"}
    ans = {"de": "Berlin", "es": "Berlín", "zh": "柏林"}
    q = {"de": "Wo?", "es": "¿Dónde?", "zh": "哪里？", "ar": "أين؟"}
    folder = tmp_path / "mlqa" / "test_partial"
    for c in ("de", "es", "zh"):
        for ql in ("ar", "de", "es", "zh"):
            if ql != c:  # like the mirror: no same-language files
                items = [("m1", q[ql], ctx[c], ans[c])]
                if c == "de":  # a second item whose answer crosses a sentence boundary
                    items.append(("m2", q[ql] + "2", "Eins zwei. Drei vier.", "zwei. Drei"))
                _qa_file(folder / f"test-context-{c}-question-{ql}.json", items)
    _qa_file(tmp_path / "tydiqa_goldp" / "dev" / "tydiqa.goldp.sw.dev.json",
             [("sw-1", "Nini?", "Sentensi moja. Jibu ni hapa.", "")])
    _qa_file(tmp_path / "tydiqa_goldp" / "train_partial" / "tydiqa.goldp.en.train.json",
             [("0", "Who?", "One here. The answer is Ada.", "Ada"), ("0", "What?", "Only one.", "Only")])
    monkeypatch.setenv("HBT_DATA_DIR", str(tmp_path))
    return tmp_path


def test_training_pairs_recombine_by_id(tiny_training_root):
    pairs = training_data.load_training_pairs()
    mlqa = pairs[pairs.dataset == "mlqa_test"]
    m1 = mlqa[mlqa.item_id == "m1"]
    # questions in ar de es zh x passages in de es zh, same-language pairs recombined
    assert len(m1) == 4 * 3
    assert {("de", "de"), ("zh", "zh"), ("ar", "es")} <= set(zip(m1.query_lang, m1.doc_lang))
    assert set(m1[m1.doc_lang == "zh"].passage) == {"答案是柏林。"}
    assert set(m1[m1.doc_lang == "de"].passage) == {"Die Antwort ist Berlin."}
    assert (m1.positive == "sentence").all()
    assert "m2" not in set(mlqa.item_id)  # answer crosses a boundary: dropped
    assert m1.article.nunique() == 1 and m1.split.nunique() == 1
    tydi = pairs[pairs.dataset == "tydiqa"].set_index("query_lang")
    assert tydi.loc["sw", "positive"] == "paragraph" and tydi.loc["sw", "passage"].startswith("Sentensi")
    assert len(tydi.loc[["en"]]) == 2  # duplicate ids in train copies get their own item ids
    assert set(tydi.loc[["en"]].passage) == {"The answer is Ada.", "Only one."}
    only_gold = training_data.load_training_pairs(positive="sentence")
    assert "sw" not in set(only_gold.query_lang)
    report = training_data.sentence_split_report().set_index(["dataset", "lang"])
    assert report.loc[("mlqa_test", "de"), "crossing"] == 1
    assert report.loc[("tydiqa", "sw"), "labelled"] == 0


# --------------------------------------------------------------------------
# Sentence splitter


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith went to Washington. He arrived on 4 July.",
     ["Dr. Smith went to Washington.", "He arrived on 4 July."]),
    ("Am 1. Januar 2000 begann es, z. B. hier. Danach nicht.",
     ["Am 1. Januar 2000 begann es, z. B. hier.", "Danach nicht."]),
    ("J. R. R. Tolkien schrieb es. Die U.S. Army kam.", ["J. R. R. Tolkien schrieb es.", "Die U.S. Army kam."]),
    ("¿Quién ganó? El equipo local ganó en 1990.", ["¿Quién ganó?", "El equipo local ganó en 1990."]),
    ("北京是中国的首都。上海是最大的城市！你知道吗？", ["北京是中国的首都。", "上海是最大的城市！", "你知道吗？"]),
    ("他说：“我来了。”然后走了。", ["他说：“我来了。”", "然后走了。"]),
    ("यह एक वाक्य है। यह दूसरा है।", ["यह एक वाक्य है।", "यह दूसरा है।"]),
    ("هل هذا سؤال؟ نعم. هذا جواب.", ["هل هذا سؤال؟", "نعم.", "هذا جواب."]),
    ("ترتيبات الجدار.يعد البكتين", ["ترتيبات الجدار.", "يعد البكتين"]),
    ("Он родился в 1990 г. в Москве. Потом уехал.", ["Он родился в 1990 г. в Москве.", "Потом уехал."]),
    ("첫 번째 문장입니다. 두 번째 문장입니다.", ["첫 번째 문장입니다.", "두 번째 문장입니다."]),
    ("Yahoo! is a company, e.g. big. It is old.", ["Yahoo! is a company, e.g. big.", "It is old."]),
    ("Line one\nLine two", ["Line one", "Line two"]),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_spans_and_answer_sentence():
    text = "  One two.  Three four. Five. "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["One two.", "Three four.", "Five."]
    assert answer_sentence(spans, text.index("four"), 4) == 1
    assert answer_sentence(spans, text.index("two"), len("two.  Three")) is None  # crosses a boundary
    assert answer_sentence(spans, len(text) + 5, 3) is None


# --------------------------------------------------------------------------
# Real mirror (fast: a few seconds of parsing)


@pytest.fixture
def mirror(monkeypatch):
    monkeypatch.delenv("HBT_DATA_DIR", raising=False)


@pytest.mark.real_data
@needs_mirror
def test_lareqa_counts_match_the_paper(mirror):
    x = data.load_lareqa("xquad_r")
    assert x.queries.groupby("lang").size().eq(1190).all() and len(x.docs) == 13014
    assert x.docs.groupby("lang").size()[["th", "en", "de"]].tolist() == [852, 1180, 1276]
    assert x.qrels.groupby("qid").size().eq(11).all()
    m = data.load_lareqa("mlqa_r")
    assert len(m.queries) == 4199 and len(m.docs) == 20534
    assert m.docs.groupby("lang").size().to_dict() == {"ar": 2545, "de": 2362, "en": 6264, "es": 1787,
                                                       "hi": 2426, "vi": 2828, "zh": 2322}
    assert set(m.qrels.groupby("qid").size()) == {2, 3, 4}


@pytest.mark.real_data
@needs_mirror
def test_mlqa_retrieval_matches_mteb_statistics(mirror):
    subsets = data.load_mlqa_retrieval()
    assert len(subsets) == 49
    assert sum(len(s.queries) for s in subsets.values()) == 15747
    assert sum(len(s.docs) for s in subsets.values()) == 13743
    # MTEB "zho-eng" (zh contexts, en questions) and "ara-deu" (ar contexts, de questions)
    assert (len(subsets["en", "zh"].queries), len(subsets["en", "zh"].docs)) == (504, 443)
    assert (len(subsets["de", "ar"].queries), len(subsets["de", "ar"].docs)) == (207, 170)
    assert subsets["de", "ar"].qrels.groupby("qid").size().eq(1).all()


@pytest.mark.real_data
@needs_mirror
def test_dureader_demo(mirror):
    rs = data.load_dureader()
    assert len(rs.queries) == 196 and 10_000 < len(rs.docs) < 11_700
    assert rs.qrels.doc_id.isin(rs.docs.doc_id).all()
    small = data.load_dureader(max_items=5)
    assert len(small.queries) == 5 and small.qrels.doc_id.isin(small.docs.doc_id).all()


@pytest.mark.real_data
@needs_mirror
def test_training_pairs_split_by_article(mirror):
    pairs = training_data.load_training_pairs()
    assert pairs.groupby("article").split.nunique().eq(1).all()
    for name in ("mlqa_test", "tydiqa"):
        share = pairs[pairs.dataset == name].split.eq("val").mean()
        assert 0.03 < share < 0.08, (name, share)
    mlqa = pairs[pairs.dataset == "mlqa_test"]
    assert set(mlqa.query_lang) == {"ar", "de", "es", "hi", "vi", "zh"}
    assert set(mlqa.doc_lang) == {"de", "es", "vi", "zh"}
    assert (mlqa.query_lang == mlqa.doc_lang).any() and (mlqa.query_lang != mlqa.doc_lang).any()
    report = training_data.sentence_split_report()
    assert report.lost_pct.dropna().lt(2.0).all()
    small = training_data.load_training_pairs(max_items=30)
    for (name, split), group in small.groupby(["dataset", "split"]):
        cap = 30 if split == "train" else 3
        per = group.groupby("doc_lang").item_id.nunique() if name == "tydiqa" else group.item_id.nunique()
        assert (per <= cap).all() if name == "tydiqa" else per <= cap
    assert set(small.split) == {"train", "val"}


@pytest.mark.real_data
@needs_mirror
def test_data_summary_describes_full_datasets(mirror):
    summary = training_data.data_summary()
    assert list(summary.columns) == ["dataset", "split", "role", "query_lang", "doc_lang", "count"]
    totals = summary.groupby(["dataset", "role"])["count"].sum()
    assert totals["xquad_r", "candidate"] == 13014 and totals["mlqa_r", "question"] == 4199
    assert totals["mlqa_retrieval", "question"] == 15747 and totals["dureader_demo", "question"] == 196
    assert set(summary.dataset) == set(data_files.DATASETS)
