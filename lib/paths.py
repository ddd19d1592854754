"""Every path of the project derives from PROJ_ROOT."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

PROJ_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("HBT_CACHE_DIR", Path.home() / ".cache" / "hybrid-batch-study"))
FIGURES_DIR = PROJ_ROOT / "figures"


def results_dir(profile: str) -> Path:
    """Folder holding every artefact of one profile's run."""
    return PROJ_ROOT / "results" / profile


def figures_dir(profile: str) -> Path:
    return results_dir(profile) / "figures"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    Works for files and folders: whatever the block writes at the yielded path
    replaces ``path`` only if the block finishes without an exception.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_write: nothing was written for {path}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def upsert_csv(path: str | os.PathLike, rows, keys: Sequence[str], *, old=None, sort_by: Sequence[str] = (),
               fill: dict | None = None, **read_kwargs):
    """Merge ``rows`` (a DataFrame) into the CSV at ``path`` and return the merged table.

    Every key (the values of the ``keys`` columns) present in ``rows``
    replaces the file's rows with that key; other rows stay. ``old`` is the
    file's table when the caller has read (and checked) it already; otherwise
    it is read with ``pandas.read_csv(path, **read_kwargs)``, and ``fill``
    (a column -> value mapping) fills its blanks. The file's columns must be
    those of ``rows``. Written atomically: an interrupted write leaves the old
    file as it was. The read-modify-write holds ``.<name>.lock`` beside the
    file, so concurrent writers (two processes) never lose each other's rows.
    """
    from lib.integrity import folder_lock

    path = Path(path)
    with folder_lock(path.parent, path.name):  # two writers: neither loses the other's rows
        return _upsert_locked(path, rows, keys, old, sort_by, fill, read_kwargs)


def _upsert_locked(path: Path, rows, keys, old, sort_by, fill, read_kwargs):
    import pandas as pd

    from lib.errors import ConfigError

    if old is None and path.is_file():
        old = pd.read_csv(path, **read_kwargs)
        if fill:
            old = old.fillna(fill)
    merged = rows
    if old is not None and len(old):
        if list(old.columns) != list(rows.columns):
            raise ConfigError(f"{path}: columns {list(old.columns)} differ from {list(rows.columns)}; "
                              "move the file away (it was written by another version) and rerun")
        replaced = pd.MultiIndex.from_frame(old[list(keys)]).isin(pd.MultiIndex.from_frame(rows[list(keys)]))
        kept = old[~replaced]
        merged = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows.reset_index(drop=True)
    if sort_by:
        merged = merged.sort_values(list(sort_by), kind="stable")
    with atomic_write(path) as tmp:
        merged.to_csv(tmp, index=False)
    return merged
