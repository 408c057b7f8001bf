"""Package faces that load their names on first use (PEP 562).

A package's ``__init__`` lists what it exports and which of its modules holds each name;
``import mailgate.protocols`` then costs nothing until a name is used, because start-up time
matters (every CLI command passes through the faces, and a bulk ``get`` is judged against a
bare imaplib loop). :func:`lazy_face` returns the module's ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_face"]


def lazy_face(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, where ``homes`` maps name → submodule."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        # Cached on the package, so the next lookup is an ordinary attribute.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
