"""Profiles: which notebooks run with which parameters.

A profile is a YAML file in ``configs/`` (or any path) of this shape::

    description: one line saying what the profile is for
    common:                  # offered to every notebook that declares the parameter
      backbone: embedded
    notebooks:
      01_data_preparation: {}
      03_training:
        sweep:               # one run of the notebook per combination;
          strategy: [mono, cross, hybrid]   # a list of such mappings gives
          seed: [0, 1, 2]                   # the union of their products
        steps: 120

Every key is checked against the ``parameters`` cell of the notebook it is
meant for, with its type: a typo stops the run before anything executes
(papermill on its own only warns about unknown parameters).
"""
from __future__ import annotations

import ast
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib.errors import ConfigError
from lib.paths import PROJ_ROOT

CONFIG_DIR = PROJ_ROOT / "configs"
NOTEBOOK_DIR = PROJ_ROOT / "notebooks"
TOP_KEYS = {"description", "common", "notebooks"}
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


@dataclass
class NotebookRun:
    """One papermill execution: a notebook and the parameters injected into it."""

    notebook: Path
    parameters: dict[str, Any]
    tag: str = ""  # distinguishes the runs of a sweep

    @property
    def name(self) -> str:
        return self.notebook.stem + (f"__{self.tag}" if self.tag else "")


@dataclass
class Profile:
    name: str
    path: Path
    description: str
    common: dict[str, Any] = field(default_factory=dict)
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)


def list_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The study's notebooks, ``NN_name.ipynb``, in numeric order."""
    found = [p for p in folder.glob("[0-9][0-9]_*.ipynb")]
    return sorted(found, key=lambda p: (int(p.name[:2]), p.name))


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Name -> {type, default} of the ``parameters`` cell of ``notebook``.

    Read straight from the cell's source with ``ast`` (each line of the cell is
    ``name: type = value  # comment``), so no kernel is needed.
    """
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ConfigError(f"{notebook}: no cell tagged 'parameters'; tag the cell that holds its parameters.")
    source = "".join(cells[0]["source"])
    params: dict[str, dict[str, Any]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            type_name = ast.unparse(node.annotation)
            default = ast.literal_eval(node.value) if node.value is not None else None
            params[node.target.id] = {"type": type_name, "default": default}
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            default = ast.literal_eval(node.value)
            params[node.targets[0].id] = {"type": type(default).__name__, "default": default}
    return params


def resolve_profile_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        path = candidate if candidate.is_absolute() else Path.cwd() / candidate
    else:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(
            f"Profile '{name_or_path}' not found ({path}). Known profiles: {known}; "
            "or pass the path of a YAML file."
        )
    return path


def load_profile(name_or_path: str) -> Profile:
    path = resolve_profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with keys {sorted(TOP_KEYS)}.")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}.")
    notebooks = raw.get("notebooks") or {}
    if not isinstance(notebooks, dict) or not all(isinstance(v or {}, dict) for v in notebooks.values()):
        raise ConfigError(f"{path}: 'notebooks' must map notebook names to parameter mappings.")
    return Profile(
        name=path.stem,
        path=path,
        description=str(raw.get("description", "")),
        common=dict(raw.get("common") or {}),
        notebooks={k: dict(v or {}) for k, v in notebooks.items()},
    )


def check_value(where: str, key: str, value: Any, type_name: str) -> None:
    """Raise ConfigError when ``value`` does not fit the declared parameter type."""
    allowed = _TYPES.get(type_name)
    if allowed is None:
        return  # a type we do not check (e.g. a list)
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, allowed)
    if not ok:
        raise ConfigError(
            f"{where}: parameter '{key}' must be {type_name}, got {type(value).__name__} ({value!r})."
        )


def plan_runs(profile: Profile, notebooks: list[Path] | None = None) -> list[NotebookRun]:
    """Expand a profile into the ordered list of notebook executions, validating every key."""
    notebooks = list_notebooks() if notebooks is None else notebooks
    by_stem = {nb.stem: nb for nb in notebooks}
    unknown_nb = set(profile.notebooks) - set(by_stem)
    if unknown_nb:
        raise ConfigError(
            f"{profile.path}: unknown notebook(s) {sorted(unknown_nb)}; notebooks are {sorted(by_stem)}."
        )
    declared = {stem: notebook_parameters(nb) for stem, nb in by_stem.items()}
    for key, value in profile.common.items():
        owners = [stem for stem, params in declared.items() if key in params]
        if not owners:
            raise ConfigError(
                f"{profile.path}: common key '{key}' is not a parameter of any notebook; check its spelling."
            )
        for stem in owners:
            check_value(f"{profile.path} (common)", key, value, declared[stem][key]["type"])

    runs: list[NotebookRun] = []
    for stem, nb in by_stem.items():
        params = declared[stem]
        section = dict(profile.notebooks.get(stem, {}))
        sweep = section.pop("sweep", {}) or {}
        where = f"{profile.path} ({stem})"
        grids = sweep if isinstance(sweep, list) else [sweep]
        if not all(isinstance(g, dict) for g in grids):
            raise ConfigError(f"{where}: 'sweep' must be a mapping of lists or a list of such mappings.")
        sweep_keys = [k for g in grids for k in g]
        for key in list(section) + sweep_keys:
            if key not in params:
                raise ConfigError(
                    f"{where}: '{key}' is not a parameter of notebook {nb.name}; "
                    f"its parameters are {sorted(params)}."
                )
        for key, value in section.items():
            check_value(where, key, value, params[key]["type"])
        for grid in grids:
            for key, values in grid.items():
                if not isinstance(values, list) or not values:
                    raise ConfigError(f"{where}: sweep '{key}' must be a non-empty list.")
                for value in values:
                    check_value(f"{where} sweep", key, value, params[key]["type"])
        base = {k: v for k, v in profile.common.items() if k in params}
        base.update(section)
        if "profile" in params:
            base["profile"] = profile.name
        if not any(grids):
            runs.append(NotebookRun(nb, base))
            continue
        seen: set[str] = set()
        for grid in grids:
            keys = list(grid)
            for combo in itertools.product(*(grid[k] for k in keys)):
                chosen = dict(zip(keys, combo))
                tag = "_".join(f"{k}-{v}" for k, v in chosen.items())
                if tag not in seen:
                    seen.add(tag)
                    runs.append(NotebookRun(nb, {**base, **chosen}, tag=tag))
    return runs
