"""Measuring speed and memory the same way everywhere: thread counts, precision,
peak memory, spreads, the timed encoding pass that notebooks 06 and 07 and
``benchmarks/bench_encode.py`` share, and the matrix-multiply peak of this CPU
at a model's shapes (the physical ceiling the benchmarks compare against)."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from typing import Iterator, Sequence

import numpy as np

from lib.errors import ConfigError
from lib.machine import cpu_has_bf16


def _check_threads(threads: int, name: str = "threads") -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigError(f"{name}={threads!r}: use a positive integer (e.g. 2)")
    return int(threads)


def set_threads(threads: int) -> dict[str, int]:
    """Fix faiss's OpenMP and torch's intra-op thread counts; return what each now uses."""
    import faiss
    import torch

    threads = _check_threads(threads)
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
    return {"faiss_threads": faiss.omp_get_max_threads(), "torch_threads": torch.get_num_threads()}


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run the block with torch limited to ``threads`` intra-op threads; the old count is restored."""
    import torch

    threads = _check_threads(threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def precision(mode: str) -> Iterator[None]:
    """Make ``Encoder.encode`` run in ``"fp32"`` or ``"bf16"`` (via ``HBT_BF16``) inside the block."""
    if mode not in ("fp32", "bf16"):
        raise ConfigError(f"precision {mode!r}: use 'fp32' or 'bf16'")
    old = os.environ.get("HBT_BF16")
    os.environ["HBT_BF16"] = "1" if mode == "bf16" else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HBT_BF16", None)
        else:
            os.environ["HBT_BF16"] = old


def hardware_bf16() -> bool:
    """Whether this CPU runs bf16 natively (the ``HBT_BF16`` override ignored)."""
    return cpu_has_bf16()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRss:
    """Peak resident memory above the starting level while the block runs (sampled every 2 ms).

    Freed heap memory is handed back to the system first (glibc ``malloc_trim``)
    so that the start level does not hide what the block allocates.
    """

    def __enter__(self) -> "PeakRss":
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2 ** 20


def spread(values: Sequence[float], name: str, scale: float = 1.0) -> dict[str, float]:
    """``name_p5``, ``name_p50``, ``name_p95`` of ``values * scale``."""
    v = np.asarray(values, dtype=float) * scale
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return {f"{name}_p5": float(p5), f"{name}_p50": float(p50), f"{name}_p95": float(p95)}


def encode_pass(encoder, texts: Sequence[str], role: str, *, batch_size: int = 32, max_length: int = 256,
                memory: bool = False) -> tuple[np.ndarray, float, float]:
    """Encode ``texts`` once: (embeddings, wall seconds, peak MiB above start, or NaN without ``memory``)."""
    kw = dict(batch_size=batch_size, max_length=max_length, progress=False)
    with (PeakRss() if memory else contextlib.nullcontext()) as mem:
        t0 = time.perf_counter()
        emb = encoder.encode(list(texts), role, **kw)
        seconds = time.perf_counter() - t0
    return emb, seconds, (mem.mib if memory else float("nan"))


def warm_up(encoder, texts: Sequence[str], role: str, *, batch_size: int = 32, max_length: int = 256) -> None:
    """One untimed pass over ``texts``, so that the timed passes find their kernels prepared."""
    encoder.encode(list(texts), role, batch_size=batch_size, max_length=max_length, progress=False)


def model_gemm_shapes(config, tokens: int = 2048) -> list[tuple[int, int, int]]:
    """The (m, k, n) matrix multiplies of a BERT layer over ``tokens`` tokens: attention projections
    (q, k, v, output) and the two feed-forward multiplies."""
    h, i = config.hidden_size, config.intermediate_size
    return [(tokens, h, h), (tokens, h, 3 * h), (tokens, h, i), (tokens, i, h)]


def gemm_peak(dtype, shapes, seconds: float = 1.0) -> dict[tuple[int, int, int], float]:
    """Best TFLOP/s of ``a @ b`` in ``dtype`` per (m, k, n) shape, each timed for about ``seconds``
    with torch's current thread count."""
    import torch

    out = {}
    for m, k, n in shapes:
        a = torch.randn(m, k).to(dtype)
        b = torch.randn(k, n).to(dtype)
        for _ in range(3):
            a @ b
        best, t_end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            for _ in range(5):
                a @ b
            dt = (time.perf_counter() - t0) / 5
            best = max(best, 2 * m * k * n / dt / 1e12)
        out[(m, k, n)] = best
    return out
