"""lib.timing: thread counts, precision switch, peak memory and spreads."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lib import timing
from lib.errors import ConfigError


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_thread_counts_must_be_positive_integers(bad):
    with pytest.raises(ConfigError, match="threads"):
        timing.set_threads(bad)
    with pytest.raises(ConfigError, match="threads"):
        with timing.torch_threads(bad):
            pass


def test_torch_threads_restores_the_old_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with timing.torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError
    assert torch.get_num_threads() == before


def test_precision_sets_and_restores_the_switch(monkeypatch):
    monkeypatch.setenv("HBT_BF16", "0")
    with timing.precision("bf16"):
        assert os.environ["HBT_BF16"] == "1"
    assert os.environ["HBT_BF16"] == "0"
    with pytest.raises(ConfigError, match="fp16"):
        with timing.precision("fp16"):
            pass


def test_peak_rss_sees_an_allocation():
    with timing.PeakRss() as mem:
        block = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, touched
        block.sum()
    del block
    assert mem.mib > 48


def test_spread_percentiles():
    assert timing.spread(range(101), "x", scale=2.0) == {"x_p5": 10.0, "x_p50": 100.0, "x_p95": 190.0}


def test_model_gemm_shapes_and_peak_on_a_tiny_config():
    from types import SimpleNamespace

    shapes = timing.model_gemm_shapes(SimpleNamespace(hidden_size=8, intermediate_size=32), tokens=16)
    assert shapes == [(16, 8, 8), (16, 8, 24), (16, 8, 32), (16, 32, 8)]
    peaks = timing.gemm_peak(torch.float32, shapes[:2], seconds=0.01)
    assert set(peaks) == set(shapes[:2]) and all(v > 0 for v in peaks.values())
