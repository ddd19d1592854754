"""Run a notebook on a profile by hand: ``profile = "smoke"`` is the only change needed.

Every notebook calls, in the cell right after its ``parameters`` cell::

    from lib.notebook import apply_profile
    param_sources = apply_profile(globals(), "04_evaluation")

What it does depends on who runs the notebook:

- **papermill** (``lib.runner`` / ``./run_all.sh``): papermill puts its
  ``# Parameters`` cell between the parameters cell and this one. The runner
  has already applied the profile, so nothing is changed: injected values
  win, the rest keep the notebook's defaults, exactly as before.
- **no cell history** (nbval executes cells with ``store_history=False``; it
  runs the copies ``lib.runner --prepare`` wrote, whose injected cell already
  holds the profile): nothing is changed either.
- **a person** (JupyterLab, ``jupyter nbconvert --execute``): every parameter
  that still has its notebook default gets the profile's value from
  ``configs/<profile>.yaml`` (``common`` plus the notebook's section). A
  notebook that the profile runs once per combination of a ``sweep`` gets the
  first combination, and the report says so. A parameter whose value differs
  from the notebook's default was set by the user and is kept.

"The notebook's default" is the value in the parameters cell as committed in
git (``HEAD``), so an edit that JupyterLab autosaved still counts as an edit;
outside a git checkout it is the value in the notebook file.

Errors name the parameter to change: an unknown profile names ``profile``, a
value of the wrong type names its parameter.
"""
from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping

import pandas as pd

from lib.config import (NOTEBOOK_DIR, apply_precision, check_value, list_notebooks, load_profile,
                        notebook_parameters, plan_runs)
from lib.errors import ConfigError
from lib.paths import PROJ_ROOT

PAPERMILL_HEADER = "# Parameters"  # first line of the cell papermill injects


@dataclass
class RunMode:
    """How the current kernel is being driven (see the module docstring)."""

    kind: str                      # "papermill" | "no-history" | "interactive"
    injected: frozenset[str] = frozenset()


_last_mode: RunMode | None = None


def notebook_path(notebook: str | Path) -> Path:
    """``notebooks/<stem>.ipynb`` for a stem such as ``"04_evaluation"``, or the given path."""
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = NOTEBOOK_DIR / f"{notebook}.ipynb"
    if not path.is_file():
        known = ", ".join(p.stem for p in list_notebooks())
        raise ConfigError(f"apply_profile: notebook {notebook!r} not found ({path}); notebooks are {known}")
    return path


def committed_defaults(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """Name -> {type, default} of the notebook's parameters cell as committed in git (``HEAD``).

    Falls back to the file on disk when the notebook is outside the checkout,
    not committed yet, or git is unavailable.
    """
    path = notebook_path(notebook).resolve()
    try:
        rel = path.relative_to(PROJ_ROOT)
        text = subprocess.run(["git", "-C", str(PROJ_ROOT), "show", f"HEAD:{rel.as_posix()}"],
                              capture_output=True, text=True, timeout=20, check=True).stdout
        json.loads(text)
    except (ValueError, OSError, subprocess.SubprocessError):
        return notebook_parameters(path)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text, encoding="utf-8")
        try:
            return notebook_parameters(copy)
        except ConfigError:  # the committed version has no parameters cell yet
            return notebook_parameters(path)


def injected_names(source: str) -> frozenset[str]:
    """Names assigned by a papermill ``# Parameters`` cell (empty if ``source`` is not one)."""
    if not source.lstrip().startswith(PAPERMILL_HEADER):
        return frozenset()
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return frozenset(names)


def run_mode(ns: MutableMapping[str, Any]) -> RunMode:
    """Tell papermill, a history-less executor (nbval) and a person apart from IPython's input history.

    ``ns["_ih"]`` lists the sources of the cells run so far, the current cell
    last. Papermill's injected cell is the one just before the current cell.
    nbval stores no history, so the list stays ``['']``.
    """
    history = ns.get("_ih")
    if history is None:
        return RunMode("interactive")  # plain Python (tests): no IPython, nothing injected
    history = [h for h in history if h.strip()]
    if len(history) < 2:  # cells ran (we are in one) but none was recorded
        return RunMode("no-history")
    names = injected_names(history[-2])
    return RunMode("papermill", names) if names else RunMode("interactive")


def run_by_executor() -> bool:
    """True when the last :func:`apply_profile` ran under papermill or nbval (no person watching)."""
    return _last_mode is not None and _last_mode.kind != "interactive"


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (0 and 0.0 are the same number; True is not 1)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if number(a) and number(b):
        return a == b
    return type(a) is type(b) and a == b


def profile_values(profile: str, notebook: str | Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(Profile, values of the notebook's first run, sweep info) as ``lib.runner`` would inject them.

    Sweep info: ``{"keys": [...], "n_runs": N, "tag": first tag}`` (empty
    without a sweep). The whole profile is validated (``lib.config.plan_runs``).
    """
    path = notebook_path(notebook)
    try:
        prof = load_profile(str(profile))
    except ConfigError as exc:
        raise ConfigError(f"parameter profile={profile!r}: {exc} Change the notebook parameter 'profile'.") from exc
    runs = [r for r in plan_runs(prof, list_notebooks(path.parent)) if r.notebook.stem == path.stem]
    if not runs:  # pragma: no cover - plan_runs gives every notebook of the folder a run
        return prof, {}, {}
    section = prof.notebooks.get(path.stem, {})
    grids = section.get("sweep") or {}
    grids = grids if isinstance(grids, list) else [grids]
    keys = sorted({k for g in grids for k in g})
    sweep = {"keys": keys, "n_runs": len(runs), "tag": runs[0].tag} if keys else {}
    return prof, dict(runs[0].parameters), sweep


def apply_profile(ns: MutableMapping[str, Any], notebook: str | Path, *, mode: RunMode | None = None,
                  defaults: dict[str, dict[str, Any]] | None = None, verbose: bool = True) -> pd.DataFrame:
    """Fill the parameters still at their notebook default from ``configs/<ns['profile']>.yaml``.

    ``ns`` is the notebook's ``globals()``; ``notebook`` its stem (``"04_evaluation"``)
    or path. ``mode`` and ``defaults`` override the detection (for tests).
    Returns one row per parameter: ``parameter, value, source, profile_value``
    with source ``papermill``, ``profile``, ``profile (sweep: first of N)``,
    ``notebook`` (set by hand, kept) or ``default``.
    """
    global _last_mode
    path = notebook_path(notebook)
    mode = run_mode(ns) if mode is None else mode
    _last_mode = mode
    declared = notebook_parameters(path)
    missing = [n for n in declared if n not in ns]
    if missing:
        raise ConfigError(f"{path.name}: parameter(s) {missing} are not defined; run the parameters cell "
                          "(the one tagged 'parameters') before this one")
    if mode.kind != "interactive":
        rows = [(n, ns[n], "papermill" if n in mode.injected else "default", None) for n in declared]
        frame = pd.DataFrame(rows, columns=["parameter", "value", "source", "profile_value"])
        if verbose:
            who = "papermill" if mode.kind == "papermill" else "an executor without cell history (nbval)"
            print(f"Run by {who}: {len(mode.injected)} injected parameter(s) kept, the profile file is not "
                  f"read again (profile={ns.get('profile')!r}).")
        return frame

    defaults = committed_defaults(path) if defaults is None else defaults
    if "profile" not in declared:
        raise ConfigError(f"{path.name}: the parameters cell has no 'profile' parameter")
    prof, values, sweep = profile_values(str(ns["profile"]), path)
    ns["profile"] = prof.name  # a YAML path names results/<stem>/, as the runner does
    precision_note = apply_precision(prof)  # as the runner does for its kernels
    rows, filled, changed, kept = [], [], [], []
    for name, info in declared.items():
        value = ns[name]
        default = defaults.get(name, info)["default"]
        wanted = values.get(name)
        if name == "profile":
            source = "notebook"
        elif name in values and _same(value, default):
            ns[name] = value = wanted
            source = f"profile (sweep: first of {sweep['n_runs']})" if name in sweep.get("keys", ()) else "profile"
            filled.append(name)
            if not _same(wanted, default):
                changed.append(f"{name}={wanted!r}")
        elif not _same(value, default):
            source = "notebook"
            if name in values and not _same(value, wanted):
                kept.append(f"{name}={value!r} (profile: {wanted!r})")
        else:
            source = "default"
        check_value(f"{path.name} (parameters cell)", name, value, info["type"])
        rows.append((name, value, source, wanted))
    if verbose:
        print(f"profile {prof.name!r} ({prof.path}): {len(filled)} parameter(s) from the profile"
              + (f", differing from the notebook defaults: {', '.join(changed)}" if changed else ""))
        if kept:
            print("set in this notebook (kept): " + ", ".join(kept))
        if precision_note:
            print(precision_note)
        if sweep:
            print(f"the profile runs this notebook once per combination of {sweep['keys']} "
                  f"({sweep['n_runs']} runs); using the first ({sweep['tag']}); set "
                  f"{' / '.join(sweep['keys'])} in the parameters cell to run another")
    return pd.DataFrame(rows, columns=["parameter", "value", "source", "profile_value"])


TRAINING_NOTEBOOK = "03_training"
RUN_IDENTITY = ("strategy", "alpha", "seed", "backbone", "num_layers", "profile")  # what names a run


def training_values(profile: str) -> dict[str, Any]:
    """Notebook 03's training settings under ``profile``: its parameter defaults, overridden by the
    profile's common values and its 03 section, without what names a run (strategy, alpha, seed,
    backbone, num_layers). Notebooks that train more models (07) build their TrainConfig from these,
    so the training budget is defined once."""
    path = notebook_path(TRAINING_NOTEBOOK)
    values = {name: info["default"] for name, info in committed_defaults(path).items()}
    values.update(profile_values(str(profile), path)[1])
    return {k: v for k, v in values.items() if k not in RUN_IDENTITY}

