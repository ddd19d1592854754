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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib import strategies
from lib.errors import ConfigError
from lib.paths import PROJ_ROOT
from lib.settings import comma_list

# The modules that bring torch or pandas (backbones, sampling, scaling, training) are imported inside the
# functions that check values with them: importing lib.config stays at 0.06 s instead of 2.4 s, so
# `python -m lib.runner --help`, a mistyped profile and lib.notebook answer at once.

CONFIG_DIR = PROJ_ROOT / "configs"
NOTEBOOK_DIR = PROJ_ROOT / "notebooks"
TOP_KEYS = {"description", "precision", "common", "notebooks"}
PRECISIONS = {"auto": None, "bf16": "1", "fp32": "0"}  # profile precision -> HBT_BF16 (lib.machine)
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
    precision: str = "auto"  # auto: bf16 where the CPU has it; bf16 / fp32: forced for every notebook


def apply_precision(profile: Profile) -> str | None:
    """Set ``HBT_BF16`` for a profile that fixes its precision (the notebooks' kernels inherit it); returns
    a note, or None for ``auto``. ConfigError when ``HBT_BF16`` is already set to the other precision."""
    wanted = PRECISIONS[profile.precision]
    if wanted is None:
        return None
    current = os.environ.get("HBT_BF16", "").strip()
    if current and current != wanted:
        raise ConfigError(f"{profile.path}: precision: {profile.precision}, but HBT_BF16={current} is set; unset "
                          "HBT_BF16 or use another profile")
    os.environ["HBT_BF16"] = wanted
    return f"precision {profile.precision} (HBT_BF16={wanted}) for every notebook of profile {profile.name!r}"


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


def caller_dir() -> Path:
    """The directory the user ran the command from (``run_all.sh`` passes it as ``HBT_CALLER_DIR``)."""
    env = os.environ.get("HBT_CALLER_DIR")
    return Path(env) if env and Path(env).is_dir() else Path.cwd()


def resolve_profile_path(name_or_path: str) -> Path:
    """A profile name (``configs/<name>.yaml``) or a YAML path, relative paths taken from the caller's directory."""
    candidate = Path(name_or_path).expanduser()
    is_path = candidate.suffix in {".yaml", ".yml"} or "/" in name_or_path or "\\" in name_or_path
    if is_path:
        path = candidate if candidate.is_absolute() else caller_dir() / candidate
    else:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        where = (f"looked for {path.resolve()}" + (f"; relative paths are taken from {caller_dir()}"
                                                   if not candidate.is_absolute() else "")) if is_path \
            else f"no {path}"
        raise ConfigError(
            f"Profile '{name_or_path}' not found ({where}). Known profiles: {known} (give the name alone), "
            "or the path of an existing YAML file."
        )
    return path


PROFILE_SHAPE = ("a profile must contain 'notebooks:' (notebook names such as 01_data_preparation or 03_training, "
                 "each with its parameters, {} for the notebook's defaults) and/or 'common:' (parameters offered "
                 "to every notebook that declares them); see configs/smoke.yaml")


def load_profile(name_or_path: str) -> Profile:
    path = resolve_profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())}).") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from exc
    if raw is None:
        raise ConfigError(f"{path} is empty: {PROFILE_SHAPE}.")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with keys {sorted(TOP_KEYS)}; {PROFILE_SHAPE}.")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}.")
    notebooks = raw.get("notebooks") or {}
    if not isinstance(notebooks, dict) or not all(isinstance(v or {}, dict) for v in notebooks.values()):
        raise ConfigError(f"{path}: 'notebooks' must map notebook names to parameter mappings.")
    common = raw.get("common") or {}
    if not isinstance(common, dict):
        raise ConfigError(f"{path}: 'common' must be a mapping of parameter names to values.")
    if not notebooks and not common:
        raise ConfigError(f"{path} sets no parameters (it would silently run every notebook at full size with "
                          f"its defaults): {PROFILE_SHAPE}.")
    precision = raw.get("precision", "auto")
    if precision not in PRECISIONS:
        raise ConfigError(f"{path}: precision: {precision!r}; use one of {sorted(PRECISIONS)}.")
    return Profile(
        name=path.stem,
        path=path,
        description=str(raw.get("description", "")),
        common=dict(common),
        notebooks={k: dict(v or {}) for k, v in notebooks.items()},
        precision=precision,
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
    for run in runs:
        validate_values(run, declared[run.notebook.stem], f"{profile.path} ({run.name})")
    return runs


# --------------------------------------------------------------------------
# Values: everything the notebooks' code would reject later, checked before anything runs

EMBEDDED_LAYERS = 12  # multilingual-e5-small
_NONNEG = ("seed", "max_items", "num_layers", "eval_every", "checkpoint_every", "val_pairs", "warmup_steps",
           "xquad_queries", "n_e2e_questions", "distill_texts")
_POSITIVE = ("steps", "threads", "repeats", "n_bootstrap", "n_permutations", "n_boot", "speed_texts",
             "n_cost_texts", "n_latency_queries", "dureader_max_length", "mlqa_max_length", "distill_steps")
_DATASETS_BY_NOTEBOOK = {"07": ("mlqa_retrieval", "xquad_r", "mlqa_r")}
_LAREQA_DATASETS = ("xquad_r", "mlqa_r")


def backbone_layers(backbone: str) -> int | None:
    """Transformer layers of a backbone when known without loading it or a network (else None)."""
    if backbone == "embedded":
        return EMBEDDED_LAYERS
    folder = _backbone_folder(backbone)
    if folder is not None and (folder / "config.json").is_file():
        try:
            depth = json.loads((folder / "config.json").read_text()).get("num_hidden_layers")
        except (OSError, ValueError):
            return None
        return depth if isinstance(depth, int) and depth > 0 else None
    return None


def _backbone_folder(backbone: str) -> Path | None:
    """The folder a path-like backbone names (relative to notebooks/, where the notebooks run), else None."""
    from lib.backbones import _looks_like_path  # lazy: torch, see the note at the imports

    path = Path(backbone).expanduser()
    if not path.is_absolute():
        path = NOTEBOOK_DIR / path
    if _looks_like_path(backbone) or path.is_dir():
        return path
    return None


def _value_problem(key: str, value: Any, values: dict[str, Any], stem: str) -> str | None:
    """What is wrong with one parameter's value (None: fine). Only names whose meaning is fixed are checked."""
    from lib.sampling import DATASET_CHOICES  # lazy: pandas, see the note at the imports

    STRATEGIES = strategies.trained_names()

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if key in _NONNEG and number(value) and value < 0:
        return f"'{key}' must be >= 0, got {value!r}"
    if key in _POSITIVE and number(value) and value < 1:
        return f"'{key}' must be >= 1, got {value!r}"
    if key == "batch_size" and number(value) and value < 2:
        return f"'batch_size' must be >= 2 (in-batch negatives need a second pair), got {value!r}"
    if key == "alpha" and number(value) and not 0 <= value <= 1:
        return f"'alpha' is the share of monolingual batches and must be in [0, 1], got {value!r}"
    if key in ("lr", "temperature") and number(value) and value <= 0:
        return f"'{key}' must be > 0, got {value!r}"
    if key == "weight_decay" and number(value) and value < 0:
        return f"'weight_decay' must be >= 0, got {value!r}"
    if key in ("max_query_length", "max_passage_length") and number(value) and value < 4:
        return f"'{key}' must be >= 4 tokens, got {value!r}"
    if key == "warmup_steps" and number(value) and number(values.get("steps")) and value > values["steps"]:
        return f"'warmup_steps' ({value}) exceeds 'steps' ({values['steps']})"
    if key == "strategy" and isinstance(value, str) and value not in STRATEGIES:
        return f"'strategy' is {value!r}; use one of {', '.join(STRATEGIES)}"
    if key == "strategies" and isinstance(value, str):
        bad = [s for s in comma_list(value) if s not in STRATEGIES]
        if bad or not value.strip():
            return f"'strategies' is {value!r}; give a comma-separated list of {', '.join(STRATEGIES)}"
    if key == "dataset_choice" and isinstance(value, str) and value not in DATASET_CHOICES:
        return f"'dataset_choice' is {value!r}; use one of {', '.join(DATASET_CHOICES)}"
    if key == "dureader_source" and value not in ("demo", "hub"):
        return f"'dureader_source' is {value!r}; use 'demo' (offline files) or 'hub'"
    if key == "datasets" and isinstance(value, str):
        allowed = _DATASETS_BY_NOTEBOOK.get(stem[:2], _LAREQA_DATASETS)
        items = comma_list(value)
        bad = [d for d in items if d not in allowed]
        if bad or not items:
            return f"'datasets' is {value!r}; give a comma-separated list of {', '.join(allowed)}"
    if key == "evaluate_on" and isinstance(value, str):
        bad = [d for d in comma_list(value) if d not in _LAREQA_DATASETS]
        if bad:
            return (f"'evaluate_on' is {value!r}; give a comma-separated list of {', '.join(_LAREQA_DATASETS)}, "
                    "or '' to leave the evaluation to notebook 04")
    if key == "backbone" and isinstance(value, str):
        if not value.strip():
            return "'backbone' is empty; use 'embedded', a model folder or a hub id"
        folder = _backbone_folder(value)
        if folder is not None and not (folder / "config.json").is_file():
            return (f"'backbone' {value!r}: no model folder with a config.json at {folder} (relative paths are "
                    "taken from notebooks/); use 'embedded', a folder written by Encoder.save, or a hub id")
        if folder is None and value != "embedded":
            from lib.scaling import check_hub_id  # lazy: torch, see the note at the imports
            try:
                check_hub_id(value)
            except ConfigError as exc:
                return f"'backbone': {exc}"
    if key == "hub_backbones" and isinstance(value, str) and value.strip():
        from lib.scaling import check_hub_id  # lazy: torch, see the note at the imports
        for hub_id in comma_list(value):
            try:
                check_hub_id(hub_id)
            except ConfigError as exc:
                return f"'hub_backbones': {exc}"
    if key == "num_layers" and number(value) and value > 0 and isinstance(values.get("backbone"), str):
        depth = backbone_layers(values["backbone"])
        if depth is not None and value > depth:
            return f"'num_layers' is {value}, but backbone {values['backbone']!r} has {depth} layers (0 keeps all)"
    if key == "layer_sizes" and isinstance(value, str):
        from lib.scaling import parse_sizes  # lazy: torch, see the note at the imports
        try:
            sizes = parse_sizes(value)
        except ConfigError as exc:
            return f"'layer_sizes': {exc}"
        depth = backbone_layers(values.get("backbone", "embedded")) if not values.get("hub_backbones") else None
        if depth is not None and max(sizes) > depth:
            return (f"'layer_sizes' {value!r}: backbone {values.get('backbone', 'embedded')!r} has {depth} layers, "
                    f"so each size must be in 1..{depth}")
    if key == "seeds" and isinstance(value, str):
        from lib.scaling import parse_seeds  # lazy: torch, see the note at the imports
        try:
            parse_seeds(value)
        except ConfigError as exc:
            return f"'seeds': {exc}"
    if key == "size_axis" and isinstance(value, str):
        from lib.scaling import AXES  # lazy: torch, see the note at the imports
        if value not in AXES:
            return f"'size_axis' is {value!r}; use one of {', '.join(AXES)}"
        if value == "distilled" and values.get("backbone", "embedded") != "embedded" \
                and not values.get("hub_backbones"):
            return "'size_axis' 'distilled' needs backbone 'embedded' (the students of lib.distill); use 'truncated'"
    if key == "budget_profiles" and isinstance(value, str):
        for name in comma_list(value):
            try:
                resolve_profile_path(name)
            except ConfigError as exc:
                return f"'budget_profiles': {exc}"
    if key == "margin" and number(value) and value < 0:
        return f"'margin' is the equivalence margin and must be >= 0, got {value!r}"
    return None


def validate_values(run: NotebookRun, declared: dict[str, dict[str, Any]], where: str) -> None:
    """ConfigError naming the parameter when a value (profile or default) would be rejected later."""
    values = {k: info["default"] for k, info in declared.items()}
    values.update(run.parameters)
    for key in sorted(values):
        problem = _value_problem(key, values[key], values, run.notebook.stem)
        if problem:
            source = "set in the profile" if key in run.parameters else "the notebook's default"
            raise ConfigError(f"{where}: {problem} ({source}).")
    if run.notebook.stem.startswith("03"):
        from lib.training import config_from  # what notebook 03 builds; lazy: torch, see the note at the imports

        try:
            config_from(values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
