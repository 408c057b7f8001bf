"""Connection handling and socket writing shared by the sandbox's IMAP and POP3 servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

__all__ = ["run_session", "write_in_slices"]

_SLICE = 1 << 20


async def write_in_slices(writer: asyncio.StreamWriter, *parts: bytes) -> None:
    """Write and drain 1 MiB at a time, so the TLS layer never buffers a whole big message."""
    for part in parts:
        view = memoryview(part)
        for offset in range(0, len(view), _SLICE):
            writer.write(view[offset : offset + _SLICE])
            await writer.drain()


async def run_session(
    session: Awaitable[None], writer: asyncio.StreamWriter, log: logging.Logger, name: str
) -> None:
    """Run one client's session; a client going away is normal, anything else is logged, and
    the connection is closed either way."""
    try:
        await session
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    except Exception:
        log.exception("%s session failed", name)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
