"""One rule for comma-separated parameters and for the Hugging Face offline switches (lib/settings.py)."""
from __future__ import annotations

from lib import settings


def test_comma_lists():
    assert settings.comma_list(" a, b,,c ,") == ["a", "b", "c"]
    assert settings.comma_list(["x ", "", " y"]) == ["x", "y"]
    assert settings.comma_list("") == [] and settings.comma_list(None) == []


def test_offline_flags(monkeypatch):
    for flag in settings.OFFLINE_FLAGS:
        monkeypatch.delenv(flag, raising=False)
    assert not settings.hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert not settings.hub_offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert settings.offline_flags() == ["HF_DATASETS_OFFLINE"] and settings.hub_offline()
