"""The layering written in docs/architecture.md holds: import-linter's contracts, no module
named like a stdlib module, and benchmarks that stand on their own (never on test modules)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from tests.layout.test_public_names import MODULES

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert linter, "import-linter is a test dependency (pyproject.toml, extra 'test')"
    result = subprocess.run(
        [linter, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_no_module_shadows_a_stdlib_name() -> None:
    # Not a clash for Python (imports are absolute) but for readers and tracebacks: `http.py`
    # in a traceback, or `from .mailbox import`, should never make anyone think of the stdlib.
    clashes = [m for m in MODULES if m.rsplit(".", 1)[-1] in sys.stdlib_module_names]
    assert not clashes, clashes


def test_benchmarks_never_import_tests() -> None:
    offenders = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert not offenders, offenders
