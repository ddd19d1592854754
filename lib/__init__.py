"""Shared code of the hybrid batch training study (see docs/architecture.md)."""
from lib.paths import PROJ_ROOT

__all__ = ["PROJ_ROOT"]
