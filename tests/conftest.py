"""Shared fixtures: a tiny random encoder, and the real embedded backbone (built once per session)."""
from __future__ import annotations

import pytest
import torch

from lib.backbones import load_encoder
from tiny_model import build_tiny_encoder


@pytest.fixture
def tiny_encoder():
    """A fresh random 2-layer, 32-dim BERT with a word-level tokenizer (see tiny_model.tiny_vocab).

    Words ``a0``..``z9``: the letter is a fake language, e.g. ``"a1 a2"`` and
    ``"b1 b2"`` are one parallel item in languages ``a`` and ``b``.
    """
    return build_tiny_encoder(seed=0)


@pytest.fixture(scope="session")
def embedded_encoder():
    """The embedded multilingual-e5-small (all 12 layers); converted on first use, then cached."""
    return load_encoder("embedded")


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads; one thread avoids fighting over shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def redirect_results(monkeypatch, root, *modules):
    """Point ``results_dir`` of the results-writing modules (and any extra ``modules``) at ``root/<profile>``."""
    from lib import evaluation, models, results, retrieval

    fake = lambda profile: root / profile  # noqa: E731
    for module in (evaluation, models, results, retrieval, *modules):
        monkeypatch.setattr(module, "results_dir", fake)
    return root


@pytest.fixture
def results_in_tmp(tmp_path, monkeypatch):
    """results/<profile>/ of the evaluation modules redirected into tmp_path/<profile>."""
    return redirect_results(monkeypatch, tmp_path)


def pytest_collection_modifyitems(session, config, items):
    """The smoke expectations read results/smoke, which the notebooks (nbval, collected after tests/ in
    ./run_all.sh test) rebuild: run them last."""
    last = [item for item in items if "test_smoke_expectations.py" in item.nodeid]
    items[:] = [item for item in items if item not in last] + last
