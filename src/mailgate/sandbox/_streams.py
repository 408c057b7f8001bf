"""Socket writing shared by the sandbox's IMAP and POP3 servers."""

from __future__ import annotations

import asyncio

__all__ = ["write_in_slices"]

_SLICE = 1 << 20


async def write_in_slices(writer: asyncio.StreamWriter, *parts: bytes) -> None:
    """Write and drain 1 MiB at a time, so the TLS layer never buffers a whole big message."""
    for part in parts:
        view = memoryview(part)
        for offset in range(0, len(view), _SLICE):
            writer.write(view[offset : offset + _SLICE])
            await writer.drain()
