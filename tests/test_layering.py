"""Imports flow one way: cli -> train -> loops -> registry/rundir -> agents -> the base layer
(nets, data, envs, run, evaluate, policy, config). Every import in the package, including
those inside functions, is checked, so a lazy import cannot hide an upward one."""
import ast
from pathlib import Path

import pytest

import contrl

PACKAGE = Path(contrl.__file__).parent

# rank of each module (by its dotted name's first parts); a module may import only modules of
# its own rank or below
RANKS = {
    "contrl.errors": 0, "contrl.seeding": 0, "contrl.config": 0, "contrl.serialize": 0,
    "contrl.stopping": 0,
    "contrl.policy": 1, "contrl.normalize": 1, "contrl.nets": 1, "contrl.envs": 1,
    "contrl.data": 1, "contrl.run": 1, "contrl.evaluate": 1, "contrl.video": 1,
    "contrl.maze_picture": 1,
    "contrl.agents": 2,
    "contrl.registry": 3, "contrl.rundir": 4, "contrl.resolve": 4,
    "contrl.loops": 5,
    "contrl.train": 6,
    "contrl.sweep": 7, "contrl.sweep_ray": 7, "contrl.report": 7,
    "contrl.cli": 8,
}


def rank(module: str) -> int:
    if module == "contrl":  # the package's __init__ (its version)
        return 0
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        key = ".".join(parts[:n])
        if key in RANKS:
            return RANKS[key]
    raise KeyError(f"{module} has no rank in tests/test_layering.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported contrl module) for every import statement of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("contrl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("contrl"):
            # ``from contrl import config``: the submodule config, not the package
            out += [(node.lineno, sub if is_module(sub) else node.module)
                    for sub in (f"{node.module}.{a.name}" for a in node.names)]
    return out


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_upward_import(path):
    me = module_name(path)
    upward = [f"line {line}: {mod}" for line, mod in imports(path)
              if mod != "contrl" and rank(mod) > rank(me)]
    assert not upward, f"{me} (rank {rank(me)}) imports upward: {upward}"


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from contrl.train import train\n")
    assert imports(bad) == [(2, "contrl.train")] and rank("contrl.train") > rank("contrl.data")
    bad.write_text("from contrl import train, errors\n")  # submodules named in a from-import
    assert imports(bad) == [(1, "contrl.train"), (1, "contrl.errors")]
