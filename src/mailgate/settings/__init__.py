"""Settings in layers: global → mailbox → job → command line, each value with its source.

Layers, lowest first:

1. defaults (:mod:`mailgate.settings.models`);
2. ``config.toml`` in the data directory (``$MAILGATE_CONFIG`` overrides the path): top-level
   ``[import]``, ``[outbox]``, ``[oauth]``;
3. environment variables ``MAILGATE_<SECTION>_<KEY>`` (``MAILGATE_OUTBOX_PER_MINUTE=20``);
4. ``[mailboxes.<name>.<section>]`` in ``config.toml``;
5. ``[jobs.<name>]`` (``mailbox = "…"`` plus ``[jobs.<name>.<section>]``);
6. ``overrides``: the command line's options, as dotted keys (``"import.after"``).

This is the seeds' "central settings that each mail task can override" (ESM, seed 004).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mailgate.errors import ConfigurationError
from mailgate.paths import data_dir
from mailgate.secret import Secret
from mailgate.settings.models import (
    ImportSettings,
    OAuthSettings,
    OutboxSettings,
    PostProcess,
    Settings,
    parse_size,
)

__all__ = [
    "DEFAULT_SOURCE",
    "ENV_CONFIG",
    "SECRET_KEYS",
    "SECTIONS",
    "ImportSettings",
    "OAuthSettings",
    "OutboxSettings",
    "PostProcess",
    "ResolvedSettings",
    "Settings",
    "config_file",
    "load_settings",
    "parse_size",
    "read_config",
]

ENV_CONFIG = "MAILGATE_CONFIG"
SECTIONS: dict[str, type[BaseModel]] = {
    "import": ImportSettings,
    "outbox": OutboxSettings,
    "oauth": OAuthSettings,
}
SECRET_KEYS = frozenset({"import.webhook_secret"})
DEFAULT_SOURCE = "default"


def config_file() -> Path:
    """``$MAILGATE_CONFIG`` or ``config.toml`` in the data directory."""
    configured = os.environ.get(ENV_CONFIG)
    return Path(configured) if configured else data_dir() / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The settings file as a dict (empty when there is none); a broken file is one error."""
    path = path or config_file()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{path} is not valid TOML: {exc}.", "fix the line it names (see docs/settings.md)."
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}.", "check its mode.") from exc
    unknown = sorted(set(data) - set(SECTIONS) - {"mailboxes", "jobs"})
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown table {unknown[0]!r}.",
            f"use {', '.join(f'[{s}]' for s in SECTIONS)}, [mailboxes.<name>] or [jobs.<name>].",
        )
    return data


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a job runs with and where each value came from."""

    settings: Settings
    sources: dict[str, str]
    mailbox: str | None = None
    job: str | None = None

    def rows(self) -> list[tuple[str, str, str]]:
        """``(dotted key, value as shown, source)`` for every key; secrets masked."""
        rows = []
        for section, model in SECTIONS.items():
            values = getattr(self.settings, "import_" if section == "import" else section)
            for key in model.model_fields:
                value = getattr(values, key)
                rows.append((f"{section}.{key}", _shown(value), self.sources[f"{section}.{key}"]))
        return rows


def _shown(value: Any) -> str:
    if isinstance(value, Secret):
        return "***"
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value.value if isinstance(value, PostProcess) else value)


class _Layers:
    """Collects raw values per dotted key with the source that set them last."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def add_table(self, table: Any, source: str, *, from_file: bool = True) -> None:
        if table is None:
            return
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"{source} must be a table of settings.", _allowed_tables())
        for section, entries in table.items():
            if section not in SECTIONS:
                continue  # callers pass only the settings part of a table
            if not isinstance(entries, Mapping):
                raise ConfigurationError(f"{source}: [{section}] must be a table.", "")
            for key, value in entries.items():
                self.set(f"{section}.{key}", value, f"{source} [{section}]", from_file=from_file)

    def set(self, dotted: str, value: Any, source: str, *, from_file: bool = False) -> None:
        section, _, key = dotted.partition(".")
        model = SECTIONS.get(section)
        if model is None or key not in model.model_fields:
            raise ConfigurationError(
                f"{source}: unknown setting {dotted!r}.",
                f"known settings: {', '.join(sorted(_all_keys()))}.",
            )
        if dotted in SECRET_KEYS and value is not None and not isinstance(value, Secret):
            value = self._secret(dotted, value, source, from_file)
        self.values[dotted] = value
        self.sources[dotted] = source

    def _secret(self, dotted: str, value: Any, source: str, from_file: bool) -> Secret:
        text = str(value)
        if text.startswith("env:"):
            name = text[4:]
            if name not in self.environ:
                raise ConfigurationError(
                    f"{source}: {dotted} names the environment variable {name}, which is not set.",
                    f"export {name} before running mailgate.",
                )
            return Secret(self.environ[name])
        if from_file:
            raise ConfigurationError(
                f"{source}: {dotted} holds a secret in clear.",
                f'write {dotted.partition(".")[2]} = "env:VARIABLE" and put the value in that '
                "environment variable.",
            )
        return Secret(text)


def _all_keys() -> list[str]:
    return [f"{s}.{k}" for s, m in SECTIONS.items() for k in m.model_fields]


def _allowed_tables() -> str:
    return f"use {', '.join(f'[{s}]' for s in SECTIONS)}."


def _env_name(dotted: str) -> str:
    return "MAILGATE_" + dotted.replace(".", "_").upper()


def load_settings(
    mailbox: str | None = None,
    job: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> ResolvedSettings:
    """Resolve the settings for ``job`` (and its mailbox) or ``mailbox``; see the module doc.

    ``data`` stands in for the file's content (to check a change before writing it).
    """
    environ = os.environ if environ is None else environ
    path = path or config_file()
    data = read_config(path) if data is None else data
    layers = _Layers(environ)
    for dotted in _all_keys():
        layers.sources[dotted] = DEFAULT_SOURCE
    layers.add_table(data, str(path))
    for dotted in _all_keys():
        name = _env_name(dotted)
        if name in environ:
            layers.set(dotted, environ[name], f"environment {name}")
    job_table: Mapping[str, Any] | None = None
    if job is not None:
        job_table = _table(data, "jobs", job, path)
        if job_table is None:
            raise ConfigurationError(
                f"no job named {job!r} in {path}.",
                f'add a [jobs.{job}] table with mailbox = "<mailbox>" (see docs/settings.md).',
            )
        job_mailbox = job_table.get("mailbox")
        if job_mailbox is not None and not isinstance(job_mailbox, str):
            raise ConfigurationError(f"{path}: jobs.{job}.mailbox must be a string.", "")
        if mailbox is None:
            mailbox = job_mailbox
    if mailbox is not None:
        layers.add_table(_table(data, "mailboxes", mailbox, path), f"{path} mailboxes.{mailbox}")
    if job_table is not None:
        layers.add_table(job_table, f"{path} jobs.{job}")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            layers.set(dotted, value, "command line")
    return ResolvedSettings(_validate(layers), dict(layers.sources), mailbox, job)


def _table(data: Mapping[str, Any], kind: str, name: str, path: Path) -> Mapping[str, Any] | None:
    tables = data.get(kind, {})
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"{path}: [{kind}] must hold tables, one per name.", "")
    table = tables.get(name)
    if table is not None and not isinstance(table, Mapping):
        raise ConfigurationError(f"{path}: {kind}.{name} must be a table.", "")
    unknown = sorted(set(table or {}) - set(SECTIONS) - ({"mailbox"} if kind == "jobs" else set()))
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown key {unknown[0]!r} in {kind}.{name}.",
            f"put settings in [{kind}.{name}.import], [{kind}.{name}.outbox] or "
            f"[{kind}.{name}.oauth].",
        )
    return table


def _validate(layers: _Layers) -> Settings:
    raw: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for dotted, value in layers.values.items():
        section, _, key = dotted.partition(".")
        raw[section][key] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first["loc"]]
        dotted = ".".join(location[:2])
        source = layers.sources.get(dotted, DEFAULT_SOURCE)
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{source}: {dotted}: {message}.", _allowed(dotted)) from None


def _allowed(dotted: str) -> str:
    if dotted == "import.after":
        return f"use one of: {', '.join(p.value for p in PostProcess)}."
    if dotted == "import.max_size":
        return "use a size such as 25MB or 35MiB."
    return "see docs/settings.md for the allowed values."
