"""Every module says what it exports: ``__all__`` present and complete, faces resolve.

As httpx does, a test checks ``__all__`` instead of trusting it: a public name defined in a
module but missing from its ``__all__`` is invisible to ``from module import *``, to the docs and
to a reader deciding what they may use.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import mailgate

SRC = Path(mailgate.__file__).parent


def all_modules() -> list[str]:
    names = ["mailgate"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="mailgate."):
        if ".migrations" in info.name or info.name.endswith(".__main__"):
            # Alembic's revision files follow Alembic's conventions; importing ``__main__``
            # would run the CLI.
            continue
        names.append(info.name)
    return sorted(names)


def source_of(module: str) -> Path:
    path = SRC.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_plumbing(value: ast.expr) -> bool:
    """A type variable or a logger: module plumbing, never API."""
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in {"TypeVar", "ParamSpec", "getLogger"}


def defined_public_names(tree: ast.Module) -> set[str]:
    """Names a module defines at top level (not imports), without a leading underscore."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and not _is_plumbing(node.value):
            for target in node.targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
            value = ast.literal_eval(node.value)
            assert isinstance(value, list | tuple)
            return list(value)
    return None


MODULES = all_modules()


@pytest.mark.parametrize("module", MODULES)
def test_all_is_declared_and_complete(module: str) -> None:
    tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
    exported = declared_all(tree)
    leaf = module.rsplit(".", 1)[-1]
    if exported is None:
        # A private module (``_name``) and the ``python -m`` entry need not declare a face.
        assert leaf.startswith("_"), f"{module} declares no __all__"
        return
    assert len(exported) == len(set(exported)), f"{module}: __all__ repeats a name"
    missing = defined_public_names(tree) - set(exported)
    assert not missing, f"{module}: public names missing from __all__: {sorted(missing)}"


@pytest.mark.parametrize("module", MODULES)
def test_every_exported_name_resolves(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in getattr(loaded, "__all__", ()):
        assert hasattr(loaded, name), f"{module}.__all__ names {name}, which it does not have"
        # A submodule of the same name shadows a face's lazy name once anything imports it.
        assert not inspect.ismodule(getattr(loaded, name)), f"{module}.{name} is a module"


def test_the_walk_sees_the_whole_package() -> None:
    # Guards the test above against a walk that silently finds nothing.
    assert {"mailgate.protocols.imap.parser", "mailgate.sandbox.graph.routes"} <= set(MODULES)
    assert len(MODULES) > 100
