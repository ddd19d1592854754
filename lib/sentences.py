"""A rule-based multilingual sentence splitter for QA passages.

The evaluation sets (XQuAD-R, MLQA-R) come with LAReQA's own sentence
splits; the training sets (MLQA test, TyDi QA GoldP) do not, so their
passages are cut here. The rules, in order:

- a line break always ends a sentence, and so does a full stop glued to a
  following Arabic letter (common in MLQA's Arabic passages);
- CJK full stops ``。！？``, the Devanagari / Bengali danda ``। ॥``, the
  Arabic question mark ``؟`` and the Urdu full stop ``۔`` end a sentence
  (closing quotes and brackets stay with it), whitespace or not;
- ``. ! ? …`` end a sentence only when whitespace and a sentence opener
  follow: an upper-case letter, a digit, an opening quote or bracket, or a
  letter of a script without case (Arabic, Indic, Hangul, CJK, Thai,
  Georgian...). A full stop does not end a sentence after a known
  abbreviation (``Dr.``, ``z.``, ``bzw.``, ``engl.``...), a single letter
  (an initial), a dotted acronym (``U.S.``) or a one- or two-digit number
  (German / Finnish ordinals such as ``1. Januar``).

Thai separates sentences with spaces only and is not handled (Thai appears
only in XQuAD-R, which carries its own splits). ``answer_sentence`` maps an
answer span to the one sentence holding it, or ``None`` when the span
crosses a boundary (LAReQA skips those items too). The training pairs built
with it live in :mod:`lib.training_data`.
"""
from __future__ import annotations

import re

__all__ = ["sentence_spans", "split_sentences", "answer_sentence"]

# Abbreviations (lower case, without the final dot) after which "." does not end a sentence.
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st sr jr vs etc e.g i.e cf al approx fig vol no nos nr ed eds pp ca
mt ft gen col lt capt sgt rev hon gov pres corp inc ltd co bros jan feb mar apr jun jul aug
sep sept oct nov dec
bzw usw vgl sog inkl ggf evtl dt jh jhd chr geb gest hrsg bd aufl mio mrd tsd od u a d h z b
s v n engl eng lat griech franz span ital russ arab chin jap ahd mhd
sra sres srta dña núm pág avda ud uds tp cía
tel tr gs ts
""".split())

_OPEN = "\"'“‘«„([¿¡"
_CLOSE = "\"'”’»)\\]"
_LATIN_END = re.compile(rf"([.!?…]+[{_CLOSE}]*)(\s+)(?=\S)")
_OTHER_END = re.compile(rf"([。！？]+[{_CLOSE}」』）]*|[؟۔।॥]+[{_CLOSE}]*)")
_NEWLINE = re.compile(r"\n+")
# Arabic text often omits the space after a full stop: "...الجدار.يعد ..."
_ARABIC_GLUED = re.compile(r"(?<=[\u0600-\u06ff])[.!?](?=[\u0621-\u064a])")
_LAST_TOKEN = re.compile(r"(\S+)$")


def _is_upper_opener(ch: str) -> bool:
    """True for characters that may start a sentence after ``. ``."""
    if ch.isdigit() or ch in _OPEN or "\u2018" <= ch <= "\u201f":
        return True
    if ch.isalpha():
        return ch.isupper() or ch.lower() == ch.upper()  # upper case, or a script without case
    return False


def _full_stop_ends_sentence(text: str, dot_at: int) -> bool:
    """Whether the "." at ``dot_at`` ends a sentence (not an abbreviation, initial or ordinal)."""
    token = _LAST_TOKEN.search(text, 0, dot_at)
    if token is None:
        return True
    word = token.group(1).lower().lstrip(_OPEN)
    last = word.rsplit(".", 1)[-1]
    if word in ABBREVIATIONS or last in ABBREVIATIONS:
        return False
    if len(last) == 1 and last.isalpha():  # an initial: "J. R. R. Tolkien"
        return False
    if last.isdigit() and len(last) <= 2:  # an ordinal: "am 1. Januar"
        return False
    if re.fullmatch(r"(?:[^\W\d_]\.)+[^\W\d_]", word):  # a dotted acronym: "U.S", "z.B"
        return False
    return True


def _cut_points(text: str) -> list[int]:
    cuts = {m.start() for m in _NEWLINE.finditer(text)}
    cuts.update(m.end() for m in _OTHER_END.finditer(text))
    cuts.update(m.end() for m in _ARABIC_GLUED.finditer(text))
    for m in _LATIN_END.finditer(text):
        nxt = text[m.end()] if m.end() < len(text) else ""
        if not _is_upper_opener(nxt):
            continue
        punct = m.group(1)
        if punct.startswith(".") and len(punct.rstrip(_CLOSE)) == 1 and not _full_stop_ends_sentence(text, m.start()):
            continue
        cuts.add(m.end(1))
    return sorted(c for c in cuts if 0 < c < len(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``, whitespace trimmed."""
    spans = []
    start = 0
    for cut in _cut_points(text) + [len(text)]:
        s, e = start, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        start = cut
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see the module docstring for the rules)."""
    return [text[s:e] for s, e in sentence_spans(text)]


def answer_sentence(spans: list[tuple[int, int]], answer_start: int, answer_len: int) -> int | None:
    """Index of the span that holds the whole answer, or ``None`` if none does.

    ``None`` means the answer crosses a sentence boundary or lies outside
    every span (e.g. an answer offset past the end of the passage).
    """
    end = answer_start + max(answer_len, 1)
    for i, (s, e) in enumerate(spans):
        if s <= answer_start < e:
            return i if end <= e else None
    return None
