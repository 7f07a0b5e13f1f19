"""The package's floors: a module imports only modules on floors below its own (or its own package),
and no two modules import each other, directly or through others. Read with `ast`, so lazy imports
inside functions count as much as top-level ones (docs/architecture.md draws the floors)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "safemt"

# Bottom to top. A module belongs to the first entry that is its name or a prefix of it.
FLOORS: list[tuple[str, ...]] = [
    ("safemt", "safemt.errors", "safemt.hashing", "safemt.scenarios", "safemt.hub", "safemt.progress",
     "safemt.layout"),
    ("safemt.config", "safemt.files", "safemt.registry"),
    ("safemt.journal", "safemt.records", "safemt.timings"),
    ("safemt.models",),
    ("safemt.judges",),
    ("safemt.moderation", "safemt.metrics"),
    ("safemt.figures",),
    ("safemt.data", "safemt.report", "safemt.dvc_profile"),
    ("safemt.stages",),
    ("safemt.cli", "safemt.__main__"),
]
ROOT = "safemt"  # the package itself (its version) sits on the bottom floor; it is nobody's prefix
FOUNDATION = FLOORS[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports (`from a import b` counts `a.b` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def floor(name: str) -> int:
    for i, names in enumerate(FLOORS):
        if any(name == n or (n != ROOT and name.startswith(n + ".")) for n in names):
            return i
    raise AssertionError(f"{name} is on no floor: add it to FLOORS")


def top_package(name: str) -> str:
    return ".".join(name.split(".")[:2])


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_is_on_a_floor() -> None:
    for name in modules():
        floor(name)


def test_no_module_imports_a_floor_above_its_own() -> None:
    upward = sorted(f"{a} -> {b}" for a, deps in graph().items() for b in deps
                    if floor(b) > floor(a) and top_package(a) != top_package(b))
    assert not upward, "imports that climb a floor:\n" + "\n".join(upward)


def test_foundation_modules_import_nothing_of_the_package() -> None:
    found = sorted(f"{a} -> {b}" for a, deps in graph().items() if floor(a) == 0 for b in deps)
    assert not found, "foundation modules must stand alone:\n" + "\n".join(found)


def test_config_imports_only_the_foundation() -> None:
    deps = graph()["safemt.config"]
    assert all(floor(d) == 0 for d in deps), sorted(deps)


def test_there_is_no_import_circle() -> None:
    deps = graph()
    # a package's __init__ re-exporting its own modules is not a circle of design: skip parent -> child
    edges = {a: {b for b in bs if not b.startswith(a + ".")} for a, bs in deps.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The checker itself can fail: a lazy upward import in a function is found."""
    src = tmp_path / "safemt"
    (src / "models").mkdir(parents=True)
    (src / "models" / "__init__.py").write_text("")
    (src / "models" / "x.py").write_text("def f():\n    from safemt.stages import inference\n")
    (src / "stages").mkdir()
    (src / "stages" / "__init__.py").write_text("")
    (src / "stages" / "inference.py").write_text("from safemt.models import x\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, src
    try:
        g = graph()
    finally:
        PACKAGE = saved
    assert "safemt.stages.inference" in g["safemt.models.x"]
    assert "safemt.models.x" in g["safemt.stages.inference"]
    assert floor("safemt.stages.inference") > floor("safemt.models.x")
