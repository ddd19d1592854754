"""The machine a timing was taken on: its CPU model and the precision the project uses on it.

Speeds are comparable only within one machine and one precision, so every
timing the study keeps (``run_times.csv``, a training run's
``train_config.json``, a distilled student's ``recipe.json``, notebook 07's
``scaling.csv``) carries :func:`describe`'s ``cpu_model`` and ``precision``.
This module imports without torch (the runner logs with it).

``HBT_BF16=0/1`` overrides the CPU check (:func:`bf16_supported`); with it
unset, bf16 autocast is used where the CPU advertises AMX-BF16 or
AVX512-BF16.
"""
from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path

from lib.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), e.g. ``"AMD EPYC"``; ``platform.processor()`` elsewhere."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16 (torch's CPU capability where
    ``/proc/cpuinfo`` cannot be read)."""
    try:
        return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", CPUINFO.read_text(errors="replace")))
    except OSError:
        pass
    try:
        import torch  # lazy: only where /proc/cpuinfo is missing
        return "AMX" in torch.backends.cpu.get_cpu_capability().upper()
    except (ImportError, AttributeError):
        return False


def bf16_supported() -> bool:
    """Whether the project computes in bf16 autocast: ``HBT_BF16=0/1`` overrides the CPU check."""
    override = os.environ.get("HBT_BF16", "").strip()
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise ConfigError(f"HBT_BF16={override!r}: set it to 0 (fp32), 1 (bf16) or leave it unset (auto)")
    return cpu_has_bf16()


def precision() -> str:
    """``"bf16"`` (autocast) or ``"fp32"``: what encoding and training use here."""
    return "bf16" if bf16_supported() else "fp32"


def describe() -> dict[str, str]:
    """``{"cpu_model": ..., "precision": ...}``, stored beside every kept timing."""
    return {"cpu_model": cpu_model(), "precision": precision()}
