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


# ---- the packages and the layers between them (README "Design in a page") -----------------------------------------

# What each package may import besides itself and the standard library. Top-level modules count as packages of
# their own name. The graph must stay acyclic, so each entry names only what lies below it.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "storage": frozenset({"errors"}),
    "mudfile": frozenset({"errors"}),
    "discovery": frozenset({"errors"}),
    "dns": frozenset({"discovery", "storage", "errors"}),
    "compiler": frozenset({"mudfile", "dns", "errors"}),
    "compat": frozenset(),
    "openflow": frozenset({"compiler", "compat", "errors"}),
    "fetch": frozenset({"mudfile", "dns", "storage", "errors", "__init__"}),
    "policy": frozenset({"fetch", "storage", "errors"}),
    "settings": frozenset({"policy", "fetch", "errors"}),
    "guard": frozenset({"compiler", "discovery", "storage", "settings", "errors"}),
    "enforcer": frozenset(
        {"compiler", "openflow", "discovery", "dns", "fetch", "guard", "mudfile", "policy", "settings", "storage",
         "errors"}
    ),
    "api": frozenset({"enforcer", "compiler", "openflow", "dns", "mudfile", "policy", "fetch", "settings", "errors"}),
    "edge": frozenset(
        {"enforcer", "compiler", "openflow", "fetch", "guard", "settings", "compat", "errors", "discovery", "dns"}
    ),
}
# Packages that take bytes and values and return values: no store, no network, no clock. (dns.store and
# dns.resolver are the DNS package's edges: the bindings kept on disk, and the worker's queries.)
PURE = ("mudfile", "discovery", "compiler", "openflow", "dns")
PURE_EXCEPT = {"dns/store.py", "dns/resolver.py"}
IMPURE_MODULES = (
    "sqlite3", "socket", "ssl", "http", "urllib.request", "urllib3", "requests", "time", "dns", "eventlet",
)  # fmt: skip
MAX_TOP_LEVEL = 8  # "at most a handful of top-level modules besides the subpackages"


def _package(rel: str) -> str:
    head, _, rest = rel.partition("/")
    return head if rest else head.removesuffix(".py")


def _internal_imports(tree: ast.Module) -> set[str]:
    """The mud_ryu packages (first component after ``mud_ryu.``) a module imports."""
    found: set[str] = set()
    for name in _imported(tree):
        parts = name.split(".")
        if parts[0] == "mud_ryu" and len(parts) > 1:
            found.add(parts[1])
    for node in ast.walk(tree):  # ``from mud_ryu import x``
        if isinstance(node, ast.ImportFrom) and node.module == "mud_ryu":
            found.update("__init__" if a.name == "__version__" else a.name for a in node.names)
    return found


def test_each_package_imports_only_the_packages_below_it() -> None:
    offenders: dict[str, list[str]] = {}
    for rel, tree in _modules().items():
        package = _package(rel)
        if package not in ALLOWED:
            continue  # the app, cli, commands and lab sit on top of everything
        bad = sorted(_internal_imports(tree) - ALLOWED[package] - {package})
        if bad:
            offenders[rel] = bad
    assert offenders == {}


def test_the_package_graph_is_acyclic() -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert state.get(node) != "open", f"cycle: {' -> '.join((*path, node))}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for below in ALLOWED.get(node, frozenset()):
            visit(below, (*path, node))
        state[node] = "done"

    for package in ALLOWED:
        visit(package, ())


def test_the_pure_packages_import_no_store_network_or_clock() -> None:
    offenders = {
        rel: sorted(m for m in _imported(tree) if any(m == i or m.startswith(f"{i}.") for i in IMPURE_MODULES))
        for rel, tree in _modules().items()
        if _package(rel) in PURE and rel not in PURE_EXCEPT
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    storage_users = {rel for rel, tree in _modules().items()
                     if _package(rel) in PURE and rel not in PURE_EXCEPT and "storage" in _internal_imports(tree)}
    assert storage_users == set()  # fmt: skip


def test_the_top_level_holds_a_handful_of_modules_and_every_package_says_what_it_is_for() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL, top
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
        if init.parent.name in ALLOWED:
            assert "May import" in doc, f"{init.parent.name}/__init__.py does not say what it may import"


MAX_LINES = 400  # "keep modules at or under ~400 lines"
LONG_MODULES = {"lab/attack_scenario.py"}  # a scripted lab scenario, read top to bottom; 413 lines


def test_no_enforcer_class_inherits_another_modules_class() -> None:
    """The enforcer is composed (issue 13): a collaborator receives what it needs, it inherits no other module's
    enforcer class, so every method a reader meets is in the file or in an object whose type is visible."""
    local: dict[str, str] = {}  # class name -> the enforcer module defining it
    trees = {rel: tree for rel, tree in _modules().items() if rel.startswith("enforcer/")}
    for rel, tree in trees.items():
        local.update((node.name, rel) for node in tree.body if isinstance(node, ast.ClassDef))
    inherited = []
    for rel, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = {b.id for b in node.bases if isinstance(b, ast.Name)}
                names |= {b.attr for b in node.bases if isinstance(b, ast.Attribute)}
                inherited += [(rel, node.name, base) for base in names if local.get(base, rel) != rel]
    assert inherited == []


def test_modules_stay_at_or_under_about_400_lines() -> None:
    long = {rel: n for rel in _modules() if (n := len((PACKAGE / rel).read_text().splitlines())) > MAX_LINES}
    assert set(long) <= LONG_MODULES, long
