"""The package's layering: no import cycles, and each layer imports only the layers below it.

The layers (docs/architecture.md draws them):

0. foundation: errors, paths, machine (CPU model, precision), strategies, metric_registry, integrity, results, timing-free helpers
1. data and models: data, data_files, sentences, training_data, encoder, embedded_model, backbones, model_store, metrics, stats
2. sampling, retrieval, timing, models (the model registry)
3. training (the loop and run folder; contrastive: the loss and one step), distillation
4. evaluation and experiments: evaluation, indexes, clustering, encoding_cost, efficiency, mlqa_retrieval, mteb_adapter, mteb_eval, scaling, scaling_stats
5. reports and interfaces: paper, paper_tables, *_report, figures, plots, readme, explore, explore_widget, checks, notebook, config, runner

A module may import modules of its own layer or lower ones; an import of a higher layer, or any cycle,
fails here. Imports inside functions count (they are dependencies all the same).
"""
from __future__ import annotations

import ast

import pytest

from lib.paths import PROJ_ROOT

LIB = PROJ_ROOT / "lib"
LAYERS = {
    0: {"__init__", "errors", "paths", "settings", "machine", "strategies", "metric_registry", "integrity", "results"},
    1: {"data", "data_files", "sentences", "training_data", "model_files", "encoder", "openvino_backend", "embedded_model", "backbones",
        "model_store", "metrics", "stats", "stats_calibration"},
    2: {"sampling", "retrieval", "timing", "models"},
    3: {"training", "contrastive", "distill"},
    4: {"evaluation", "indexes", "clustering", "encoding_cost", "efficiency", "mlqa_retrieval", "mteb_adapter", "mteb_eval", "scaling", "scaling_stats"},
    5: {"paper", "paper_tables", "alpha_axis", "budget_axis", "checkpoints", "plots", "figures", "readme", "explore", "explore_widget", "checks", "notebook", "notebook_export", "config", "runner"},
}


def layer_of(module: str) -> int:
    if module.endswith("_report"):
        return 5
    for layer, names in LAYERS.items():
        if module in names:
            return layer
    raise AssertionError(f"lib/{module}.py has no layer: add it to LAYERS here and to docs/architecture.md")


def imports() -> dict[str, set[str]]:
    modules = {p.stem for p in LIB.glob("*.py")}
    graph = {}
    for path in LIB.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "lib":
                    deps |= {a.name for a in node.names if a.name in modules}
                elif node.module.startswith("lib."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lib.")}
        graph[path.stem] = deps - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if not state.get(v):
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if not state.get(u):
            found = visit(u)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(p.stem for p in LIB.glob("*.py")))
def test_imports_respect_the_layers(module):
    mine = layer_of(module)
    upward = sorted(d for d in imports()[module] if layer_of(d) > mine)
    assert not upward, f"lib/{module}.py (layer {mine}) imports higher layers: " + \
        ", ".join(f"{d} (layer {layer_of(d)})" for d in upward)
