"""Large messages: fetch_mime streams (bounded memory) and a dropped connection raises."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mailgate.errors import TransportError
from mailgate.interop.dovecot import DovecotServer, big_message, put, stream_in_probe
from mailgate.protocols.base import SearchCriteria, Security
from mailgate.protocols.imap.adapter import ImapMailbox
from mailgate.testing import SandboxController
from tests.interop.conftest import run, token_source


def test_50mb_message_streams_with_bounded_memory(
    dovecot: DovecotServer, idp: SandboxController, alice: str, alice_token: str, tmp_path: Path
) -> None:
    raw = big_message(50 * 1024 * 1024)
    put(dovecot, alice, "Big50", raw)
    done = stream_in_probe(dovecot, idp.ca_file, alice, alice_token, "Big50", tmp_path / "big.eml")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written"] == len(raw)
    written = (tmp_path / "big.eml").read_bytes()
    assert hashlib.sha256(written).digest() == hashlib.sha256(raw).digest()
    # Streaming: peak memory grows by a few chunks, far below one copy of the message
    # (a buffering client grows by at least the message size, usually twice).
    assert report["growth"] < len(raw) // 4, report


class CuttingProxy:
    """Forwards TCP to Dovecot and drops both sides after ``limit`` bytes from the server."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port = target_port
        self.limit = limit
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, cut: bool) -> None:
            sent = 0
            while data := await src.read(65536):
                if cut and sent + len(data) > self.limit:
                    dst.write(data[: self.limit - sent])
                    await dst.drain()
                    break
                sent += len(data)
                dst.write(data)
                await dst.drain()
            for w in (writer, up_writer):
                w.transport.abort()

        await asyncio.gather(
            pump(reader, up_writer, False), pump(up_reader, writer, True), return_exceptions=True
        )

    async def stop(self) -> None:
        if self.server:
            self.server.close()


def test_connection_dropped_mid_fetch_raises_transport_error(
    dovecot: DovecotServer, alice: str, alice_token: str, tmp_path: Path
) -> None:
    raw = big_message(5 * 1024 * 1024)
    put(dovecot, alice, "Drop5", raw)
    dest = tmp_path / "partial.eml"

    async def go() -> Any:
        proxy = CuttingProxy(dovecot.ports["imap"], limit=2 * 1024 * 1024)
        port = await proxy.start()
        box = ImapMailbox(
            alice,
            "127.0.0.1",
            port,
            token_source=token_source(alice_token),
            security=Security.PLAIN,
            timeout=10,
        )
        try:
            async with box:
                (ref,) = await box.search("Drop5", SearchCriteria())
                with dest.open("wb") as handle:
                    await box.fetch_mime(ref, handle)
        finally:
            await proxy.stop()

    with pytest.raises(TransportError) as info:
        run(go())
    assert "closed the connection" in str(info.value) or "failed" in str(info.value)
    assert 0 < dest.stat().st_size < len(raw)
