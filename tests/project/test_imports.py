"""The folder tree is the architecture: who may import whom, read from the code itself.

Every module's imports are read with :mod:`ast` (no third-party tool), including
imports inside functions and under ``if TYPE_CHECKING:`` (a loop that only the type
checker sees is still a loop a reader must untangle). The allowed arrows are data,
here at the top; docs/ARCHITECTURE.md draws the same picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The project's packages (top-level folders that are import packages).
PACKAGES = ("protocol", "link", "relay", "agent", "technician")

#: Package -> the project packages it may import. Anything else is a violation.
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),  # the pure core imports no program
    "link": {"protocol"},  # the client side of the wire
    "relay": {"protocol"},  # the server: never the agent, the technician or the link
    "agent": {"protocol", "link"},
    "technician": {"protocol", "link"},
}

#: Capabilities (agent/capabilities/**) never touch the transport.
CAPABILITIES = "agent.capabilities"
TRANSPORT = ("link", "websockets")


def module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name ``module`` imports (absolute, as written or resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            # ``from agent import cli`` imports the module agent.cli.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def project_imports(module: str) -> set[str]:
    """The project modules ``module`` imports (the nearest existing module of each name)."""
    found: set[str] = set()
    for name in imported_names(module, MODULES[module]):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


GRAPH = {module: project_imports(module) for module in MODULES}


def top(module: str) -> str:
    return module.split(".", 1)[0]


def test_every_package_imports_only_what_it_may() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if top(target) != top(module) and top(target) not in ALLOWED[top(module)]
    ]
    assert not wrong, "arrows the architecture forbids:\n" + "\n".join(wrong)


def test_no_capability_touches_the_transport() -> None:
    wrong = []
    for module, path in MODULES.items():
        if module != CAPABILITIES and not module.startswith(CAPABILITIES + "."):
            continue
        for name in imported_names(module, path):
            if top(name) in TRANSPORT:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "capabilities receive a port, never the link:\n" + "\n".join(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), plus
    modules that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_loops() -> None:
    # A package's __init__ that imports nothing of its own is not part of a loop;
    # a submodule importing its package's __init__ (for __version__) is an arrow too.
    loops = cycles(GRAPH)
    assert not loops, "import loops:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_the_checker_sees_what_it_should() -> None:
    """The reader itself: relative imports, function-level and TYPE_CHECKING imports."""
    assert "protocol.errors" in GRAPH["protocol.envelope"] or "protocol.envelope" in GRAPH
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert any(m.startswith("agent.capabilities.") for m in MODULES)
