"""The import rules of docs/design.md, read from the source (module- and function-level imports alike), and
the repository's self-containment: users clone it alone."""
from __future__ import annotations

import ast
import os
import subprocess
from collections import defaultdict
from typing import Dict, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = ("lfdm", "ray_jobs", "serve", "benchmarks")
SIBLINGS = ("data", "models", "diffusion", "metrics")


def imports_of(path: str) -> Set[str]:
    """Every absolute module an file imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    skipped = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
               and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
               for stmt in block.body for n in ast.walk(stmt)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def modules(top: str) -> Dict[str, Set[str]]:
    """{dotted module name: imported names} of every .py file under ROOT/top."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                out[dotted] = imports_of(path)
    return out


def unit(module: str) -> str:
    """lfdm.training.run -> lfdm.training; lfdm.config -> lfdm.config (a package or top-level module)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "lfdm" and len(parts) > 1 else parts[0]


def test_lfdm_never_imports_the_layers_above_it_or_ray():
    bad = {m: sorted(i for i in names if i.split(".")[0] in ("ray", "fastapi", "starlette", "serve", "ray_jobs",
                                                                "benchmarks"))
           for m, names in modules("lfdm").items()}
    assert not {m: v for m, v in bad.items() if v}


def test_ray_jobs_serve_and_benchmarks_do_not_import_each_other():
    for top in ("ray_jobs", "serve", "benchmarks"):
        others = set(TOP) - {top, "lfdm"}
        bad = {m: sorted(i for i in names if i.split(".")[0] in others) for m, names in modules(top).items()}
        assert not {m: v for m, v in bad.items() if v}, top


def test_sibling_packages_and_io_stay_independent():
    for module, names in modules("lfdm").items():
        own = unit(module)
        targets = {unit(i) for i in names if i.startswith("lfdm.")} - {own, "lfdm"}
        if own in {f"lfdm.{s}" for s in SIBLINGS}:
            assert not targets & {f"lfdm.{s}" for s in SIBLINGS}, (module, targets)
            assert targets <= {"lfdm.config", "lfdm.io"}, (module, targets)
        if own == "lfdm.io":
            assert not targets, (module, targets)
        if own == "lfdm.diffusion":
            assert "lfdm.models" not in targets, module


def test_lfdm_packages_form_no_import_cycle():
    graph = defaultdict(set)
    for module, names in modules("lfdm").items():
        for name in names:
            if name.startswith("lfdm.") and unit(name) != unit(module) and unit(name) != "lfdm":
                graph[unit(module)].add(unit(name))
    state: Dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_nothing_in_the_repository_reaches_outside_it():
    """Users clone this repository alone: no file may point at a sibling folder of it."""
    # spelled in parts so this file does not match itself
    needles = (".." + "/shared", "DESIGN" + ".md", "REFERENCE" + ".md")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    files = tracked or [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT)
                        if ".venv" not in d and ".git" not in d for f in fs]
    hits = []
    for rel in files:
        try:
            text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        if any(needle in text for needle in needles):
            hits.append(rel)
    assert not hits, hits
