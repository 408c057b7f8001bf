"""Every import the README and docs/ show in a Python example works as written."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def example_imports() -> list[tuple[str, str, str]]:
    """(page, module, name) for each ``from mailgate... import name`` in a Python block."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mailgate"):
                    found += [(page.name, node.module or "", a.name) for a in node.names]
    return found


EXAMPLES = example_imports()


def test_the_docs_show_the_one_import_face() -> None:
    assert ("outbox.md", "mailgate", "enqueue") in EXAMPLES


@pytest.mark.parametrize(("page", "module", "name"), EXAMPLES)
def test_a_docs_import_resolves(page: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{page}: from {module} import {name}"
