"""No import circles: the static import graph (tests/import_graph.py) of workshop/data, and the helper itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from import_graph import find_cycles, format_cycles, import_graph


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("package", ["workshop.data"])
def test_no_import_circle(package: str) -> None:
    cycles = find_cycles(import_graph(package, function_level=True))
    assert not cycles, f"import circles in {package} (module or function level):\n{format_cycles(cycles)}"


def test_the_helper_finds_module_and_function_level_circles(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\n",  # a package re-exporting its modules is no circle
        "pkg/a.py": "from pkg import b\nA = 1\n",
        "pkg/b.py": "from .c import C\n",  # relative import, resolved to pkg.c
        "pkg/c.py": "import pkg.a\nC = 2\n",  # a -> b -> c -> a at module level
        "pkg/d.py": "def f():\n    from pkg.e import E\n",
        "pkg/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import f\nimport pkg.d\nE = 3\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "from .. import c\n",  # pkg.c, two levels up
    })
    graph = import_graph("pkg", function_level=True, root=root)
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.sub.x"] == {"pkg.c"}
    assert graph["pkg.e"] == {"pkg.d"}, "the TYPE_CHECKING import never runs and is not counted"
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]
    module_level = find_cycles(import_graph("pkg", function_level=False, root=root))
    assert module_level == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]], "d -> e is inside a function"
    assert "pkg.a -> pkg.b -> pkg.c -> pkg.a" in format_cycles(module_level)
