"""The house: the framework imports on its own, and arrows point one way (blog -> lib)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyproject"


@pytest.mark.parametrize("module", ["pyproject.lib", "pyproject.lib.http"])
def test_the_framework_imports_without_the_blog_or_a_database(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m.startswith('pyproject.blog') or m == 'pyproject.app')\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{module} loaded: {result.stdout.strip()}"


def imported_modules(path: Path) -> set[str]:
    """Give every pyproject module a file imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("pyproject")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "lib").glob("*.py")), ids=lambda p: p.name)
def test_no_framework_module_imports_the_blog(path: Path) -> None:
    wrong = {m for m in imported_modules(path) if not m.startswith("pyproject.lib")}
    assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_the_exceptions_import_nothing_of_the_framework_but_http_phrases() -> None:
    assert imported_modules(PACKAGE / "lib" / "exceptions.py") <= {
        "pyproject.lib.http",
        "pyproject.lib.http.STATUS_PHRASES",
    }


def test_every_blog_area_lives_under_pyproject_blog() -> None:
    top_level = {path.name for path in PACKAGE.glob("*.py")}
    assert top_level == {"__init__.py", "app.py", "cli.py", "config.py"}


# --- tests mirror the code -----------------------------------------------------------------

TESTS = ROOT / "tests"

# Modules with no test file of their own, and why.
WITHOUT_OWN_TESTS = {
    "lib/__init__.py": "re-exports the framework's names; each is tested with its own module",
    "blog/__init__.py": "a docstring only",
}
# Test files other engineers are writing now (#12); drop an entry once its file is in.


def package_modules() -> list[str]:
    """Give every module of the framework and the blog, as "lib/app.py", "blog/posts.py"."""
    return sorted(
        f"{room}/{path.name}" for room in ("lib", "blog") for path in (PACKAGE / room).glob("*.py")
    )


@pytest.mark.parametrize("module", package_modules())
def test_every_module_has_its_own_test_file(module: str) -> None:
    if module in WITHOUT_OWN_TESTS:
        return
    room, name = module.split("/")
    expected = TESTS / room / f"test_{name}"
    assert expected.exists(), f"pyproject/{module} has no tests/{room}/test_{name}"


def test_the_exceptions_to_the_mirror_name_modules_that_exist() -> None:
    modules = set(package_modules())
    assert set(WITHOUT_OWN_TESTS) <= modules


@pytest.mark.parametrize("path", sorted((TESTS / "lib").glob("test_*.py")), ids=lambda p: p.name)
def test_every_framework_test_file_names_a_framework_module(path: Path) -> None:
    module = PACKAGE / "lib" / path.name.removeprefix("test_")
    assert module.exists(), f"tests/lib/{path.name} tests no pyproject/lib module"
