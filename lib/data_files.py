"""The study's data files: which datasets exist, where their files are, whether they are intact, downloads.

Dataset names (:data:`LANGS` lists each one's languages): ``xquad_r``,
``mlqa_r`` (LAReQA sentence retrieval), ``mlqa_retrieval`` (MTEB's
MLQARetrieval on MLQA dev), ``mlqa_test`` and ``tydiqa`` (training pairs),
``dureader_demo`` (Chinese search paragraphs).

Files come from :func:`data_dir`: ``$HBT_DATA_DIR``, else the read-only
mirror ``PROJ_ROOT/../shared/data``, else ``CACHE_DIR/data`` filled by
:func:`download` from the official sources. A ``SHA256SUMS`` file there is
honoured: each file is checked once per process before it is parsed
(:func:`verify_file`, :func:`read_json`), and :func:`preflight` checks a
run's datasets before anything is read. What the files become (retrieval
sets) is :mod:`lib.data`.
"""
from __future__ import annotations

import functools
import io
import json
import os
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from lib.errors import DataError
from lib.integrity import file_sha256, read_sums
from lib.paths import CACHE_DIR, PROJ_ROOT, atomic_write

LANGS: dict[str, tuple[str, ...]] = {
    "xquad_r": ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    "mlqa_r": ("ar", "de", "en", "es", "hi", "vi", "zh"),
    "mlqa_retrieval": ("ar", "de", "en", "es", "hi", "vi", "zh"),
    # MLQA test has all seven languages; the offline mirror holds questions in
    # ar de es hi vi zh and passages in de es vi zh only.
    "mlqa_test": ("ar", "de", "en", "es", "hi", "vi", "zh"),
    "tydiqa": ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
    "dureader_demo": ("zh",),
}
DATASETS = tuple(LANGS)
ZERO_SHOT_LANGS = ("el", "th", "tr")
MIRROR_DIR = PROJ_ROOT.parent / "shared" / "data"
CHECKSUM_FILE = "SHA256SUMS"

# Dataset -> folder (relative to data_dir()) that must exist for it.
FOLDERS = {
    "xquad_r": "xquad_r", "mlqa_r": "mlqa_r", "mlqa_retrieval": "mlqa/dev", "mlqa_test": "mlqa",
    "tydiqa": "tydiqa_goldp", "dureader_demo": "dureader_demo",
}
# Official sources (used only by download(); never at test time).
LAREQA_URL = "https://raw.githubusercontent.com/google-research-datasets/lareqa/{commit}/{folder}/{lang}.json"
LAREQA_SOURCES = {"xquad_r": ("9bc8c7fb", "xquad-r"),
                  "mlqa_r": ("354d67d1cd066854cdfbf5ad0e6105528976141d", "mlqa-r")}
MLQA_URL = "https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip"
TYDIQA_URLS = {"dev": "https://storage.googleapis.com/tydiqa/v1.1/tydiqa-goldp-v1.1-dev.json",
               "train": "https://storage.googleapis.com/tydiqa/v1.1/tydiqa-goldp-v1.1-train.json"}
TYDIQA_PREFIX = {"arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
                 "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te"}
DUREADER_URL = ("https://raw.githubusercontent.com/baidu/DuReader/c625076b06da8f56d59f19c41c73bd580a98a347/"
                "DuReader-2.0/data/demo/search.{split}.json")

# --------------------------------------------------------------------------
# Where the files are


def data_dir() -> Path:
    """The data folder: ``$HBT_DATA_DIR``, else the mirror, else ``CACHE_DIR/data``."""
    env = os.environ.get("HBT_DATA_DIR")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(
                f"HBT_DATA_DIR={env!r}: no such folder. Point HBT_DATA_DIR to a copy of the data mirror (the "
                f"folder holding xquad_r/, mlqa_r/, mlqa/, tydiqa_goldp/, dureader_demo/), or unset it to use "
                f"{MIRROR_DIR} or downloads into {CACHE_DIR / 'data'}")
        return root
    if MIRROR_DIR.is_dir():
        return MIRROR_DIR
    return CACHE_DIR / "data"


def check_name(name: str) -> str:
    if name not in LANGS:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return name


def check_langs(name: str, langs) -> tuple[str, ...]:
    """``langs`` as a tuple in the dataset's order (``None`` = all); unknown codes raise."""
    valid = LANGS[check_name(name)]
    if langs is None:
        return valid
    if isinstance(langs, str):
        langs = [langs]
    bad = [lang for lang in langs if lang not in valid]
    if bad or not langs:
        raise DataError(f"{name}: unknown language code(s) {bad or langs!r}; valid codes: {', '.join(valid)}")
    return tuple(lang for lang in valid if lang in langs)


def dataset_dir(name: str) -> Path:
    """The folder of one dataset; downloaded first when ``data_dir()`` is the cache.

    When the data folder has a ``SHA256SUMS``, every file it lists under the
    dataset's folder must be there: a missing file is an error here, before
    anything is read (files are found by pattern, so a lost file would
    otherwise silently shrink the data).
    """
    root = data_dir()
    folder = root / FOLDERS[check_name(name)]
    if not folder.is_dir():
        if root == CACHE_DIR / "data" and not os.environ.get("HBT_DATA_DIR"):
            download(name)
            return folder
        raise DataError(
            f"{name}: missing folder {folder}. Copy it from the data mirror into {root}, point HBT_DATA_DIR to a "
            f"complete copy, or unset HBT_DATA_DIR so that lib.data_files.download({name!r}) fills {CACHE_DIR / 'data'}")
    missing = listed_missing(folder)
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            f"{name}: {len(missing)} file(s) listed in {root / CHECKSUM_FILE} are missing: {shown}. The run would "
            "use less data than the profile expects; re-copy them from the data mirror (or point HBT_DATA_DIR to "
            "a complete copy)")
    return folder


def listed_missing(folder: Path) -> list[Path]:
    """Files under ``folder`` that the data folder's ``SHA256SUMS`` lists but that do not exist."""
    root = data_dir().resolve()
    try:
        prefix = Path(folder).resolve().relative_to(root).as_posix() + "/"
    except ValueError:
        return []
    return [root / rel for rel in _checksums(str(root)) if rel.startswith(prefix) and not (root / rel).is_file()]


# --------------------------------------------------------------------------
# Checksums and JSON reading


@functools.lru_cache(maxsize=None)
def _checksums(root: str) -> dict[str, str]:
    path = Path(root) / CHECKSUM_FILE
    if not path.is_file():
        return {}
    try:
        return read_sums(path)
    except ValueError as exc:
        raise DataError(f"{path} is not a checksum list ({exc}); re-copy it from the data mirror") from exc


_VERIFIED: set[tuple[str, int, int]] = set()


def verify_file(path: Path) -> None:
    """Check ``path`` against the data folder's ``SHA256SUMS`` (once per file version).

    The digest of a file version (path, size, mtime) is remembered across
    processes (:func:`lib.integrity.file_sha256`), so every notebook can
    afford to check every file it reads.
    """
    path = Path(path)
    root = data_dir()
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return
    expected = _checksums(str(root.resolve())).get(rel)
    if expected is None:
        return
    if not path.is_file():
        raise DataError(f"{path} is listed in {root / CHECKSUM_FILE} but missing: re-copy it from the data "
                        "mirror, or delete the dataset folder and run lib.data_files.download(name)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    digest = file_sha256(path)
    if digest != expected:
        raise DataError(
            f"{path} is corrupt or truncated: its sha256 is {digest[:16]}, while {root / CHECKSUM_FILE} lists "
            f"{expected[:16]} for it. Re-copy the file from the data mirror, or delete it and run "
            "lib.data_files.download(name) with network access")
    _VERIFIED.add(key)


def preflight(datasets) -> list[str]:
    """Problems (missing or changed files) of ``datasets`` against ``SHA256SUMS``, without parsing anything.

    For the runner, before any notebook starts; a dataset folder that does
    not exist yet (to be downloaded into the cache) is not a problem here.
    """
    root = data_dir()
    sums = _checksums(str(root.resolve()))
    problems = []
    for name in dict.fromkeys(datasets):
        folder = root / FOLDERS[check_name(name)]
        if not folder.is_dir():
            if os.environ.get("HBT_DATA_DIR") or root != CACHE_DIR / "data":
                problems.append(f"{name}: missing folder {folder}; copy it from the data mirror or point "
                                "HBT_DATA_DIR to a complete copy")
            continue
        prefix = FOLDERS[name].rstrip("/") + "/"
        for rel in (r for r in sums if r.startswith(prefix)):
            try:
                verify_file(root / rel)
            except DataError as exc:
                problems.append(str(exc))
    return list(dict.fromkeys(problems))


def verify_all() -> pd.DataFrame:
    """Check every file listed in ``SHA256SUMS``: columns ``file, ok, error``."""
    root = data_dir()
    rows = []
    for rel in _checksums(str(root.resolve())):
        try:
            verify_file(root / rel)
            rows.append((rel, True, ""))
        except DataError as exc:
            rows.append((rel, False, str(exc)))
    return pd.DataFrame(rows, columns=["file", "ok", "error"])


def read_json(path: Path, lines: bool = False):
    """A data file's JSON (``lines``: one record per line), checked against ``SHA256SUMS`` first."""
    if not path.is_file():
        raise DataError(f"missing data file {path}: re-copy it from the data mirror, point HBT_DATA_DIR to a "
                        "complete copy, or run lib.data_files.download(name)")
    verify_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            if lines:
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); the file is truncated or corrupt: re-copy it from "
                        "the data mirror, or delete it and run lib.data_files.download(name)") from exc


# --------------------------------------------------------------------------
# Downloads (official sources; needs network)


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as exc:
        raise DataError(f"could not download {url} ({exc}). Without network, set HBT_DATA_DIR to a copy of "
                        f"the data mirror or place it at {MIRROR_DIR}") from exc


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def download(name: str, root: Path | None = None) -> Path:
    """Fetch one dataset from its official source into ``root`` (default ``CACHE_DIR/data``).

    MLQA comes as ``MLQA_V1.zip`` (dev into ``mlqa/dev``, the complete test
    set into ``mlqa/test``); TyDi GoldP as the two official JSON files,
    split per language into ``tydiqa_goldp/{dev,train}`` like the mirror.
    """
    check_name(name)
    root = Path(root) if root is not None else CACHE_DIR / "data"
    if name in LAREQA_SOURCES:
        commit, folder = LAREQA_SOURCES[name]
        for lang in LANGS[name]:
            _write(root / FOLDERS[name] / f"{lang}.json", _fetch(LAREQA_URL.format(commit=commit, folder=folder,
                                                                                   lang=lang)))
    elif name in ("mlqa_retrieval", "mlqa_test"):
        with zipfile.ZipFile(io.BytesIO(_fetch(MLQA_URL))) as archive:
            for member in archive.namelist():
                parts = Path(member).parts
                if member.endswith(".json") and len(parts) >= 2 and parts[-2] in ("dev", "test"):
                    _write(root / "mlqa" / parts[-2] / parts[-1], archive.read(member))
    elif name == "tydiqa":
        for split, url in TYDIQA_URLS.items():
            by_lang: dict[str, list] = {}
            for article in json.loads(_fetch(url))["data"]:
                qa_id = article["paragraphs"][0]["qas"][0]["id"]
                by_lang.setdefault(TYDIQA_PREFIX.get(qa_id.split("-")[0], "?"), []).append(article)
            for lang, articles in by_lang.items():
                out = root / "tydiqa_goldp" / split / f"tydiqa.goldp.{lang}.{split}.json"
                _write(out, json.dumps({"version": "v1.1", "data": articles}, ensure_ascii=False).encode())
    elif name == "dureader_demo":
        for split in ("dev", "train", "test"):
            _write(root / "dureader_demo" / f"search.{split}.json", _fetch(DUREADER_URL.format(split=split)))
    return root / FOLDERS[name]


def clear_caches() -> None:
    """Forget the checksum lists and which files were verified (tests, or after replacing files)."""
    _checksums.cache_clear()
    _VERIFIED.clear()
