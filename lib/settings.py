"""Reading users' settings: comma-separated lists and the Hugging Face offline switches.

One rule each, so every parameter that takes a list (``datasets``,
``strategies``, ``models``, ``hub_backbones``, ``budget_profiles``, ...) is
read the same way, and every message about the hub says the same thing about
the offline variables.
"""
from __future__ import annotations

import os
from typing import Iterable

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_FALSE = ("", "0", "false", "False", "no")


def comma_list(value: str | Iterable | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; a list or tuple is stripped the same way; None -> []."""
    if value is None:
        return []
    items = str(value).split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()]


def offline_flags() -> list[str]:
    """The Hugging Face offline variables that are set (to anything but empty / 0 / false)."""
    return [f for f in OFFLINE_FLAGS if os.environ.get(f, "").strip() not in _FALSE]


def hub_offline() -> bool:
    """Whether the hub may not be contacted (any of :data:`OFFLINE_FLAGS` set)."""
    return bool(offline_flags())
