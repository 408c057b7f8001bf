"""Where mailgate keeps its files: the data directory and the files inside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs

from mailgate.errors import ConfigurationError

__all__ = ["ENV_HOME", "ENV_SANDBOX", "data_dir", "ensure_private_dir", "sandbox_description_file"]

ENV_HOME = "MAILGATE_HOME"
ENV_SANDBOX = "MAILGATE_SANDBOX"


def data_dir() -> Path:
    """The data directory: ``$MAILGATE_HOME`` or the platform's user data dir."""
    configured = os.environ.get(ENV_HOME)
    path = Path(configured) if configured else Path(platformdirs.user_data_dir("mailgate"))
    return ensure_private_dir(path)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed; the vault and caches live below it.

    An existing directory that others can write to, or that another user owns, is refused:
    whoever can write there could swap the vault, the key or the state store for their own.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except (FileExistsError, NotADirectoryError) as exc:
        # A file where the directory (or one of its parents) should be: the user's setting.
        raise ConfigurationError(
            f"the data directory {path} cannot be created: {_in_the_way(path)} is a file, "
            "not a directory.",
            f"set {ENV_HOME} to a directory (or a path that does not exist yet), or move that "
            "file away.",
        ) from exc
    except OSError as exc:
        raise ConfigurationError(
            f"the data directory {path} cannot be created or read ({exc.strerror or exc}).",
            f"set {ENV_HOME} to a directory you can write to.",
        ) from exc
    if info.st_mode & 0o022 or info.st_uid not in (os.getuid(), 0):
        raise ConfigurationError(
            f"the data directory {path} can be written by other users "
            f"(mode {stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}).",
            f"run `chmod 700 {path}` as its owner, or set {ENV_HOME} to a private directory.",
        )
    return path


def _in_the_way(path: Path) -> Path:
    """The first of ``path`` and its parents that exists but is not a directory."""
    for candidate in reversed((path, *path.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return path


def sandbox_description_file() -> Path:
    """The JSON file a running sandbox writes about itself (``$MAILGATE_SANDBOX`` overrides)."""
    configured = os.environ.get(ENV_SANDBOX)
    if configured:
        return Path(configured)
    return data_dir() / "sandbox" / "sandbox.json"
