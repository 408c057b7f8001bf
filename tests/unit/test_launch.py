"""mailgate.launch: the CLI runs with the collector on again, even when importing it failed."""

from __future__ import annotations

import gc
import sys
import types

import pytest

from mailgate import launch


def test_the_cli_runs_with_the_collector_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    fake = types.ModuleType("mailgate.cli")
    fake.main = lambda: seen.append(gc.isenabled())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mailgate.cli", fake)
    launch.main()
    assert seen == [True] and gc.isenabled()


def test_a_failed_import_leaves_the_collector_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mailgate.cli", None)  # "import mailgate.cli" fails
    with pytest.raises(ImportError):
        launch.main()
    assert gc.isenabled()
