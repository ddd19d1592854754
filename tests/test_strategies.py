"""The strategy registry: one registration adds a strategy to sampling, training, evaluation and reports."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import redirect_results
from lib import evaluation as E
from lib import models
from lib import strategies
from lib.errors import ConfigError
from lib.sampling import BatchSampler
from lib.training import TrainConfig, run_name, train
from test_evaluation import tiny_set
from test_sampling import make_pairs
from tiny_model import build_tiny_encoder

NEW = "mostly-mono"


@pytest.fixture
def mostly_mono():
    """A test-only fourth strategy: nine batches in ten monolingual, whatever alpha says."""
    strategies.register(strategies.Strategy(NEW, "mostly mono", "tab:purple", lambda alpha: 0.9))
    yield NEW
    strategies.unregister(NEW)


def test_builtin_strategies_and_their_rules():
    assert strategies.trained_names() == ("mono", "cross", "hybrid")
    assert strategies.names()[0] == strategies.ZERO_SHOT
    assert [strategies.mono_share(s, 0.3) for s in ("mono", "cross", "hybrid")] == [1.0, 0.0, 0.3]
    with pytest.raises(ConfigError, match="hybird.*use one of mono, cross, hybrid"):
        strategies.mono_share("hybird", 0.5)
    with pytest.raises(ConfigError, match="alpha=1.5"):
        strategies.mono_share("hybrid", 1.5)
    with pytest.raises(ConfigError, match="not trained"):
        strategies.mono_share(strategies.ZERO_SHOT, 0.5)
    with pytest.raises(ConfigError, match="already registered"):
        strategies.register(strategies.Strategy("mono", "again", "k", lambda a: 1.0))


def test_a_bad_rule_is_refused(monkeypatch):
    strategies.register(strategies.Strategy("broken", "broken", "k", lambda alpha: 2 * alpha))
    try:
        with pytest.raises(ConfigError, match="must return a probability"):
            strategies.mono_share("broken", 0.9)
    finally:
        strategies.unregister("broken")


def test_a_registered_strategy_runs_through_sampling_training_and_evaluation(mostly_mono, tmp_path, monkeypatch):
    pairs = make_pairs()
    assert mostly_mono in strategies.trained_names()
    sampler = BatchSampler(pairs, mostly_mono, batch_size=4, seed=0)
    kinds = [b.kind for b in sampler.batches(400)]
    share = kinds.count("mono") / len(kinds)
    assert abs(share - 0.9) < 4 * np.sqrt(0.9 * 0.1 / len(kinds))

    torch.set_num_threads(1)
    cfg = TrainConfig(backbone="tiny", strategy=mostly_mono, steps=2, batch_size=4, warmup_steps=1, eval_every=1,
                      lr=1e-3, bf16=False, val_pairs=16)
    run = tmp_path / "models" / run_name(cfg)
    train(cfg, run, pairs=pairs, encoder=build_tiny_encoder(0), progress=False)

    redirect_results(monkeypatch, tmp_path)
    spec = models.describe_model(str(run))
    assert (spec.strategy, spec.alpha) == (mostly_mono, 0.9)
    rows = E.evaluate_model(str(run), None, "mlqa_r", "unit", data=tiny_set())
    assert set(rows["strategy"]) == {mostly_mono}
    assert np.allclose(rows["alpha"], 0.9)
    assert strategies.order_key(mostly_mono) == len(strategies.names()) - 1
    assert strategies.color(mostly_mono) == "tab:purple"
