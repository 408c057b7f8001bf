"""POP3 delete_permanently is all or nothing: a failing DELE or a bad ref commits no deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mailgate.errors import MailgateError, ProtocolError
from mailgate.protocols.base import MessageRef, Security
from mailgate.protocols.pop3 import Pop3Mailbox

UIDS = {1: "u1", 2: "u2", 3: "u3"}


class ScriptedPop3:
    """A loopback POP3 server that records commands and applies DELEs only on QUIT."""

    def __init__(self, refuse_dele: set[int], refuse_rset: bool = False) -> None:
        self.refuse_dele = refuse_dele
        self.refuse_rset = refuse_rset
        self.commands: list[str] = []
        self.committed: list[int] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        marked: set[int] = set()

        def send(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        send("+OK ready")
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            self.commands.append(line)
            verb, _, arg = line.partition(" ")
            if verb == "AUTH":
                send("+ ")
                await reader.readline()
                send("+OK authenticated")
            elif verb == "STAT":
                send(f"+OK {len(UIDS)} 30")
            elif verb == "UIDL":
                send("+OK")
                for number, uid in UIDS.items():
                    send(f"{number} {uid}")
                send(".")
            elif verb == "DELE":
                number = int(arg)
                if number in self.refuse_dele:
                    send("-ERR cannot delete")
                else:
                    marked.add(number)
                    send("+OK marked")
            elif verb == "RSET":
                if self.refuse_rset:
                    send("-ERR no")
                else:
                    marked.clear()
                    send("+OK")
            elif verb == "QUIT":
                self.committed.extend(sorted(marked))
                send("+OK bye")
                await writer.drain()
                break
            await writer.drain()
        writer.close()


async def _no_refresh() -> str:
    return "token"


def _run(server: ScriptedPop3, action: Callable[[Pop3Mailbox], Awaitable[None]]) -> None:
    async def main() -> None:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            box = Pop3Mailbox(
                "a@x.de", "127.0.0.1", port, token_source=_no_refresh, security=Security.PLAIN
            )
            await box.connect()
            try:
                await action(box)
            finally:
                # Every command is recorded before its reply is sent: no waiting needed.
                await box.close()
        finally:
            listener.close()
            await listener.wait_closed()

    asyncio.run(main())


def _refs(*uids: str) -> list[MessageRef]:
    return [MessageRef("INBOX", uid) for uid in uids]


def test_failing_dele_is_rolled_back_with_rset() -> None:
    server = ScriptedPop3(refuse_dele={2})
    with pytest.raises(ProtocolError, match="cannot delete"):
        _run(server, lambda box: box.delete_permanently(_refs("u1", "u2", "u3")))
    assert server.commands[-4:] == ["DELE 1", "DELE 2", "RSET", "QUIT"]
    assert server.committed == []


def test_unknown_ref_is_refused_before_any_dele() -> None:
    server = ScriptedPop3(refuse_dele=set())
    with pytest.raises(MailgateError, match="no longer in the Inbox"):
        _run(server, lambda box: box.delete_permanently(_refs("u1", "gone")))
    assert not [c for c in server.commands if c.startswith("DELE")]
    assert server.committed == []


def test_failing_rset_drops_the_session_without_quit() -> None:
    server = ScriptedPop3(refuse_dele={3}, refuse_rset=True)
    with pytest.raises(ProtocolError, match="cannot delete"):
        _run(server, lambda box: box.delete_permanently(_refs("u1", "u3")))
    assert server.commands[-3:] == ["DELE 1", "DELE 3", "RSET"]
    assert "QUIT" not in server.commands and server.committed == []


def test_successful_delete_commits_on_quit() -> None:
    server = ScriptedPop3(refuse_dele=set())
    _run(server, lambda box: box.delete_permanently(_refs("u2", "u2", "u3")))
    assert server.committed == [2, 3]
    assert server.commands.count("DELE 2") == 1
