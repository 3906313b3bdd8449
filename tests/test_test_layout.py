"""No test module imports another: what two of them share is a fixture (conftest.py) or a plain
helper module (tests/helpers.py, tests/browser/pages.py). A test module imported by another
runs its tests wherever it is imported, and a change to one test breaks an unrelated file."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    """The dotted name of a file under the repository (``tests.browser.test_course``)."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def is_test_module(name: str) -> bool:
    """Whether the dotted name is one of the repository's test modules."""
    path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
    return path.name.startswith("test_") and path.is_file()


def imported_modules(name: str, source: str) -> list[str]:
    """Every module that the source of module ``name`` imports, relative imports resolved,
    with ``from package import module`` counted as the module."""
    package = name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            found.append(origin)
            found += [f"{origin}.{alias.name}" for alias in node.names]
    return found


def imported_test_modules(name: str, source: str) -> list[str]:
    """The test modules (other than itself) that the source of module ``name`` imports."""
    return [module for module in imported_modules(name, source)
            if is_test_module(module) and module != name]


TEST_MODULES = sorted(TESTS.rglob("test_*.py"))


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda path: module_name(path))
def test_no_test_module_imports_another(path: Path):
    assert imported_test_modules(module_name(path), path.read_text()) == []


@pytest.mark.parametrize("source", [
    "from .test_questionnaires import submit",
    "from . import test_questionnaires",
    "from tests.browser.test_questionnaires import submit",
    "import tests.browser.test_questionnaires",
    "from ..browser.test_questionnaires import submit",
    "def f():\n    from .test_questionnaires import submit\n",
])
def test_the_check_finds_each_way_of_importing_a_test_module(source):
    assert imported_test_modules("tests.browser.test_course", source) == [
        "tests.browser.test_questionnaires"]


@pytest.mark.parametrize("source", [
    "from .conftest import check_page",
    "from .pages import submit",
    "from ..helpers import Factory",
    "from tests.helpers import statements",
    "import pytest",
])
def test_fixtures_and_helper_modules_may_be_imported(source):
    assert imported_test_modules("tests.browser.test_course", source) == []


def test_every_test_module_is_checked():
    names = {module_name(path) for path in TEST_MODULES}
    assert {"tests.test_test_layout", "tests.browser.test_course",
            "tests.instruments.test_engine_alone"} <= names
