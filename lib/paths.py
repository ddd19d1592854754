"""Every path of the project derives from PROJ_ROOT."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

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
