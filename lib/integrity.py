"""Integrity of a run's inputs and outputs: checksums, the run lock, leftovers.

- Checksums: :func:`file_sha256` hashes a file once per version: the digest
  is remembered (in ``CACHE_DIR/integrity/digests.json``, keyed by the
  file's absolute path, size and mtime), so verifying the data mirror or the
  converted backbone in every notebook costs a ``stat`` per file.
  :func:`read_sums` / :func:`write_sums` read and write ``SHA256SUMS``-style
  manifests; :func:`check_files` compares files with one.
- :class:`RunLock`: one run per results folder. ``results/<profile>/.run.lock``
  holds an exclusive ``flock`` plus the holder's pid, host, start time and
  command; the kernel drops the lock when its holder dies (even by SIGKILL),
  so a lock left by a dead run is detected and taken over.
- :func:`clean_stale_temps`: the ``.<name>.<random>`` folders that
  :func:`lib.paths.atomic_write` leaves when its process is killed.
- :func:`describe_os_error`: a one-line message with the folder and the fix
  for permission and disk errors.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from lib import paths
from lib.errors import StudyError

DIGEST_CACHE_NAME = "digests.json"
PRUNE_AT = 2000  # entries; then the ones whose file is gone are dropped
LOCK_NAME = ".run.lock"
# atomic_write's temporary folders: tempfile.mkdtemp(prefix=f".{name}.") adds 8 characters
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<rand>[a-z0-9_]{8})$")


class LockedError(StudyError):
    """Another live run holds the results folder."""


# --------------------------------------------------------------------------
# Checksums


def _digest_cache_path() -> Path:
    env = os.environ.get("HBT_CACHE_DIR")  # read at call time: tests point HBT_CACHE_DIR elsewhere
    root = Path(env) if env else paths.CACHE_DIR
    return root / "integrity" / DIGEST_CACHE_NAME


def _load_digest_cache() -> dict:
    try:
        return json.loads(_digest_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _store_digest(key: str, entry: list) -> None:
    """Remember one digest; a cache that cannot be written only costs a re-hash later."""
    path = _digest_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            cache = _load_digest_cache()
            if len(cache) >= PRUNE_AT:  # forget files that no longer exist (e.g. test folders)
                cache = {k: v for k, v in cache.items() if os.path.exists(k)}
            cache[key] = entry
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
            os.replace(tmp, path)
    except OSError:
        pass


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The file's sha256 (hex), read in full."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, hashed once per (path, size, mtime) and remembered across processes."""
    path = Path(path)
    st = path.stat()
    key = str(path.resolve())
    stamp = [st.st_size, st.st_mtime_ns]
    entry = _load_digest_cache().get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
        return entry[2]
    digest = sha256_of(path)
    _store_digest(key, stamp + [digest])
    return digest


def read_sums(path: str | os.PathLike) -> dict[str, str]:
    """``SHA256SUMS`` lines (``<hex>  [*][./]relative/path``) -> {relative path: hex}."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.strip().lstrip("*").removeprefix("./")] = digest.lower()
    return sums


def write_sums(folder: str | os.PathLike, files: Iterable[str], name: str = "SHA256SUMS") -> Path:
    """Write ``folder/name`` listing the sha256 of ``files`` (relative to ``folder``); return its path."""
    folder = Path(folder)
    digests = {rel: sha256_of(folder / rel) for rel in sorted(files)}
    target = folder / name
    tmp = folder / f".{name}.{os.getpid()}"
    tmp.write_text("".join(f"{digest}  {rel}\n" for rel, digest in digests.items()))
    os.replace(tmp, target)
    for rel, digest in digests.items():  # remembered, so the next check is a stat
        st = (folder / rel).stat()
        _store_digest(str((folder / rel).resolve()), [st.st_size, st.st_mtime_ns, digest])
    return target


def check_file(path: str | os.PathLike, expected: str) -> str | None:
    """None when ``path`` has sha256 ``expected``; else what is wrong, in words."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    digest = file_sha256(path)
    if digest != expected.lower():
        return (f"{path} has changed: its sha256 is {digest[:12]}..., the manifest says {expected[:12]}... "
                f"(size now {path.stat().st_size} bytes)")
    return None


def check_files(folder: str | os.PathLike, sums: dict[str, str]) -> list[str]:
    """Every problem (missing or changed file) of ``folder`` against ``sums``."""
    folder = Path(folder)
    return [p for rel, digest in sorted(sums.items()) if (p := check_file(folder / rel, digest))]


# --------------------------------------------------------------------------
# Leftovers of killed writes


def stale_temps(folder: str | os.PathLike, older_than_s: float = 0.0) -> list[Path]:
    """atomic_write's temporary folders under ``folder`` (recursively) that no write owns any more.

    Only folders named ``.<name>.<8 random characters>`` that hold nothing or
    just ``<name>`` are listed, so nothing else is ever taken for one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    found = []
    for dirpath, dirnames, _ in os.walk(folder):
        for d in list(dirnames):
            m = _TEMP_RE.match(d)
            if not m:
                continue
            path = Path(dirpath) / d
            try:
                inside = [p.name for p in path.iterdir()]
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if set(inside) <= {m["name"]} and age >= older_than_s:
                found.append(path)
                dirnames.remove(d)  # do not descend into it
    return found


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temps` (call it only while holding the folder's :class:`RunLock`)."""
    removed = []
    for path in stale_temps(folder):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


# --------------------------------------------------------------------------
# One run per results folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a results folder (``folder/.run.lock``), held by one live process.

    ``acquire()`` raises :class:`LockedError` naming the holder (pid, host,
    start time, command) when another live process holds it. A lock file
    left by a dead process (its flock went with it) is taken over;
    ``stale_holder`` then says whose it was.
    """

    def __init__(self, folder: str | os.PathLike, command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command if command is not None else " ".join(sys.argv)
        self.stale_holder: dict | None = None
        self._fh = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def probe(self) -> None:
        """Raise :class:`LockedError` now if a live run holds the folder (creates nothing)."""
        try:
            fh = open(self.path)
        except OSError:
            return
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._locked() from None
            fcntl.flock(fh, fcntl.LOCK_UN)

    def _locked(self) -> LockedError:
        info = self.holder()
        return LockedError(
            f"{self.folder} is in use by another run: pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, started {info.get('started', '?')} ({info.get('command', '?')}). "
            "Wait for it to finish, or stop it (kill <pid>; it resumes when rerun), then rerun this command")

    def acquire(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise self._locked() from None
        previous = self.holder()
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.stale_holder = previous  # its process died without releasing (flock went with it)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": self.command}
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(info) + "\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def describe_stale(holder: dict) -> str:
    alive = _pid_alive(int(holder["pid"])) if str(holder.get("pid", "")).isdigit() else False
    state = "still exists but no longer holds the lock" if alive else "is gone"
    return (f"took over the lock of an earlier run (pid {holder.get('pid')}, started {holder.get('started')}), "
            f"whose process {state}")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, name: str) -> Iterator[None]:
    """A short exclusive lock (``folder/.<name>.lock``) around a read-modify-write of ``folder/name``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------
# Permission and disk errors


def describe_os_error(exc: OSError, folder: str | os.PathLike | None = None) -> str | None:
    """One line naming the folder and the fix, for the OS errors a user can fix; None for others."""
    where = Path(exc.filename) if getattr(exc, "filename", None) else (Path(folder) if folder else None)
    place = where if where is None or where.is_dir() or not where.parent.exists() else where.parent
    if exc.errno == errno.EROFS:
        return (f"{place or 'a folder'} is read-only ({exc.strerror}): remount that disk writable, or work in a "
                "checkout on a writable disk; the run wrote nothing incomplete")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{place or 'a folder'} is not writable by this user ({exc.strerror}): fix its permissions "
                f"(e.g. chmod u+w {place}), or run from a checkout you own; the run wrote nothing incomplete")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk holding {place or 'the results folder'} ({exc.strerror}): free "
                "some space (e.g. delete old results/<profile>/embeddings folders) and rerun the same command; "
                "files written before are intact and the run resumes")
    return None


def remember_sums(folder: str | os.PathLike, sums: dict[str, str]) -> None:
    """Record ``sums`` (just computed elsewhere, e.g. before a rename) as the digests of the files now in ``folder``."""
    folder = Path(folder)
    for rel, digest in sums.items():
        with contextlib.suppress(OSError):
            st = (folder / rel).stat()
            _store_digest(str((folder / rel).resolve()), [st.st_size, st.st_mtime_ns, digest])
