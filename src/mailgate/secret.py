"""The ``Secret`` type: a string that never shows itself by accident."""

from __future__ import annotations

from typing import Any

__all__ = ["Secret"]


class Secret:
    """Wraps a secret value; ``repr``/``str``/f-strings give ``***``.

    The value reaches the wire only through an explicit :meth:`reveal`, so a stray log line,
    exception message or pydantic dump cannot carry it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the clear value. Call this only where it goes to the wire or to encryption."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")
