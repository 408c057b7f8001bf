"""The README's first code block is what CI runs, and installs come from the lock file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The commands of the README's first code block, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert block, "README.md has no code block"
    lines = (line.split("#", 1)[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


def ci_commands() -> list[str]:
    """The README commands that .ci/run runs, in the order it runs them."""
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assigned = dict(re.findall(r"^(readme_demo|readme_test)=(.+)$", text, re.M))
    assert set(assigned) == {"readme_demo", "readme_test"}, ".ci/run names no README commands"
    order = [name for name in re.findall(r"^\$(readme_\w+)", text, re.M)]
    order += re.findall(r"^exec \$(readme_\w+)$", text, re.M)
    assert order == ["readme_demo", "readme_test"], order
    return [assigned[name] for name in order]


def test_ci_runs_the_readme_commands_in_order() -> None:
    assert readme_commands() == ci_commands() == ["./scripts/demo", "./scripts/test"]


def test_ci_checks_the_line_the_demo_really_ends_with() -> None:
    closing = re.search(r'^demo_closing_line="(.+)"$', (ROOT / ".ci" / "run").read_text(), re.M)
    assert closing, ".ci/run names no closing line"
    demo = (ROOT / "src" / "mailgate" / "demo" / "run.py").read_text(encoding="utf-8")
    assert closing.group(1) in demo


def test_the_readme_commands_exist_and_are_executable() -> None:
    for command in readme_commands():
        path = ROOT / command
        assert path.is_file() and path.stat().st_mode & 0o111, command


def test_installs_come_from_the_lock_file_with_a_pinned_installer() -> None:
    setup = (ROOT / "scripts" / "_venv.sh").read_text(encoding="utf-8")
    assert "uv sync --locked" in setup
    assert "--upgrade" not in setup, "nothing upgrades an installer at run time"
    pins = (ROOT / "scripts" / "uv-requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^uv==\d+\.\d+\.\d+ \\$", pins, re.M)
    assert "--hash=sha256:" in pins


def test_the_lock_file_pins_every_dependency_and_the_project_keeps_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"]: p for p in lock["package"]}
    requirements = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["test"],
    ]
    for requirement in requirements:
        name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower()
        assert name in locked and locked[name]["source"] == {"registry": "https://pypi.org/simple"}
        # A library's users must not be forced onto our exact pins.
        assert "==" not in requirement, requirement
    mailgate = locked["mailgate"]
    assert {d["name"] for d in mailgate["metadata"]["requires-dist"]} >= {
        re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements
    }
    for build_pin in project["tool"]["uv"]["build-constraint-dependencies"]:
        assert "==" in build_pin, build_pin
