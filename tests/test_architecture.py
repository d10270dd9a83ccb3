"""The shape the design promises: a pure core, with the controller framework at the edge only.

Checked on the source (AST), so a stray ``import ryu`` in a core module fails the suite rather
than waiting for someone to notice in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mud_ryu"
FRAMEWORKS = ("ryu", "os_ken")
FRAMEWORK_MODULES = {"compat.py"}  # the one module that imports Ryu / os-ken
FRAMEWORK_USERS = {"app.py"}  # the one module that asks compat for the event loop / app base
# cli loads its subcommand modules by name, the sandbox the function it is asked to run
DYNAMIC_IMPORTERS = FRAMEWORK_MODULES | {"cli.py", "lab/sandbox.py"}
# edges: the core takes values, not env (commands/devices.py: the API commands' MUD_RYU_TOKEN)
ENV_READERS = {"compat.py", "lab/sandbox.py", "lab/ovs.py", "commands/devices.py"}


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            names.add("<dynamic import>")  # only compat may pick modules at run time
    return names


def test_only_compat_imports_the_framework() -> None:
    offenders = {
        name: sorted(
            m
            for m in _imported(tree)
            if m.split(".")[0] in FRAMEWORKS or (m == "<dynamic import>" and name not in DYNAMIC_IMPORTERS)
        )
        for name, tree in _modules().items()
        if name not in FRAMEWORK_MODULES
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_app_loads_the_framework_proper() -> None:
    users = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "framework"
    }
    assert users <= FRAMEWORK_USERS | FRAMEWORK_MODULES


def test_core_reads_no_environment() -> None:
    readers = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
    }
    assert readers <= ENV_READERS
