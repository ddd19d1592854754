"""The registry of batch strategies: the one place that says what a strategy is.

A strategy has a name (used in profiles, run names and result files), a
display label, a colour and a display order (the order of registration),
and a rule: the probability that one of its training batches is
monolingual, given the profile's ``alpha``. ``alpha`` always means that
share for the strategies that use it (hybrid) and is ignored by the
others; nothing overwrites it. ``zero-shot`` (the untuned backbone) is
registered for display only: it has no rule and is never trained.

Adding a strategy is one :func:`register` call here (or in a test); the
sampler, training, evaluation and the reports read this registry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from lib.errors import ConfigError

ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str  # how tables and figures call it
    color: str  # matplotlib colour
    rule: Callable[[float], float] | None  # alpha -> P(batch is monolingual); None: not trained
    uses_alpha: bool = False  # whether the run name and tables carry alpha
    description: str = ""

    @property
    def trained(self) -> bool:
        return self.rule is not None


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy (display order = registration order); re-registering a name is an error."""
    if strategy.name in _REGISTRY:
        raise ConfigError(f"strategy {strategy.name!r} is already registered")
    if not strategy.name or any(c in strategy.name for c in " /,"):
        raise ConfigError(f"strategy name {strategy.name!r}: use a non-empty name without spaces, '/' or ','")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Remove a strategy (for tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"strategy={name!r}: use one of {', '.join(trained_names())}") from None


def names() -> tuple[str, ...]:
    """Every registered name, zero-shot included, in display order."""
    return tuple(_REGISTRY)


def trained_names() -> tuple[str, ...]:
    """The strategies a model can be trained with, in display order."""
    return tuple(n for n, s in _REGISTRY.items() if s.trained)


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0 \
            or math.isnan(float(alpha)):
        raise ConfigError(f"alpha={alpha!r}: the share of monolingual batches must be a number in [0, 1]")
    return float(alpha)


def mono_share(name: str, alpha: float) -> float:
    """Probability that a batch of strategy ``name`` is monolingual."""
    strategy = get(name)
    if not strategy.trained:
        raise ConfigError(f"strategy {name!r} is not trained; use one of {', '.join(trained_names())}")
    share = float(strategy.rule(check_alpha(alpha)))
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"strategy {name!r} gives a monolingual share of {share} for alpha={alpha}: its rule "
                          "must return a probability")
    return share


def order_key(name: str) -> int:
    """Sort key: display order; unknown names last."""
    return list(_REGISTRY).index(name) if name in _REGISTRY else len(_REGISTRY)


def color(name: str) -> str:
    return _REGISTRY[name].color if name in _REGISTRY else "0.3"


def label(name: str) -> str:
    return _REGISTRY[name].label if name in _REGISTRY else name


register(Strategy(ZERO_SHOT, "zero-shot (untuned)", "0.45", None, description="the backbone without training"))
register(Strategy("mono", "X-X-mono", "tab:blue", lambda alpha: 1.0,
                  description="every batch one language, question and passage in it"))
register(Strategy("cross", "X-Y (cross)", "tab:orange", lambda alpha: 0.0,
                  description="every pair crosses languages"))
register(Strategy("hybrid", "hybrid", "tab:green", lambda alpha: alpha, uses_alpha=True,
                  description="each batch mono with probability alpha, else cross"))
