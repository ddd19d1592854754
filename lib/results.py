"""The results store: tables under ``results/<profile>/`` that several notebooks write.

``upsert_csv`` merges rows into a CSV by key, atomically and under a lock
beside the file, so an interrupted write leaves the old table and two
writers never lose each other's rows. ``metrics.csv``, ``efficiency.csv``
and ``scaling.csv`` are all written through it.

The manifest ``results/<profile>/evaluations.json`` (:func:`read_manifest`,
:func:`record`) is the one record of what produced each evaluation: an entry
per ``<model>__<dataset>`` (LAReQA datasets and MLQARetrieval alike) with
the model fingerprint and the settings, so a notebook knows which
evaluations are fresh.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import json

from lib.errors import ConfigError
from lib.integrity import folder_lock
from lib.paths import atomic_write, results_dir

MANIFEST = "evaluations.json"


def check_columns(path: Path, found, expected) -> None:
    """ConfigError naming ``path`` when the file's columns are not the ones this version writes."""
    if list(found) != list(expected):
        raise ConfigError(f"{path}: columns {list(found)} differ from {list(expected)}; "
                          "move the file away (it was written by another version) and rerun")


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
    path = Path(path)
    with folder_lock(path.parent, path.name):  # two writers: neither loses the other's rows
        return _upsert_locked(path, rows, keys, old, sort_by, fill, read_kwargs)


def _upsert_locked(path: Path, rows, keys, old, sort_by, fill, read_kwargs):
    import pandas as pd

    if old is None and path.is_file():
        old = pd.read_csv(path, **read_kwargs)
        if fill:
            old = old.fillna(fill)
    merged = rows
    if old is not None and len(old):
        check_columns(path, old.columns, rows.columns)
        replaced = pd.MultiIndex.from_frame(old[list(keys)]).isin(pd.MultiIndex.from_frame(rows[list(keys)]))
        kept = old[~replaced]
        merged = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows.reset_index(drop=True)
    if sort_by:
        merged = merged.sort_values(list(sort_by), kind="stable")
    with atomic_write(path) as tmp:
        merged.to_csv(tmp, index=False)
    return merged


def manifest_path(profile: str) -> Path:
    return results_dir(profile) / MANIFEST


def read_manifest(profile: str) -> dict:
    """``{"profile": ..., "entries": {"<model>__<dataset>": {...}}}``; empty when nothing was evaluated.
    ConfigError when the file belongs to another profile (copied between results folders)."""
    path = manifest_path(profile)
    if not path.is_file():
        return {"profile": profile, "entries": {}}
    manifest = json.loads(path.read_text())
    if manifest.get("profile") != profile:
        raise ConfigError(f"{path} belongs to profile {manifest.get('profile')!r}, not {profile!r}: it was "
                          f"copied from another profile's results; delete it or use profile={manifest.get('profile')!r}")
    return manifest


def record(profile: str, key: str, entry: dict) -> None:
    """Set one manifest entry (atomically, under the manifest's lock)."""
    path = manifest_path(profile)
    with folder_lock(path.parent, path.name):
        manifest = read_manifest(profile)
        manifest["entries"][key] = entry
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

