"""The sandbox's POP3 server over implicit TLS, answering like Exchange Online (Inbox only).

Commands dispatch to ``pop_<VERB>``. Real POP semantics: the maildrop is a snapshot taken at
authentication, DELE only marks, and marked messages are removed for good at QUIT (never on a
dropped connection). UIDL values are the store's item ids, stable while the message stays in
the Inbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging

from mailgate.protocols.sasl import parse_initial_response
from mailgate.sandbox._streams import run_session, write_in_slices
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import MailAccessDenied, check_access
from mailgate.sandbox.exchange.store import StoredMailbox, StoredMessage

__all__ = ["AUTH_FAILED", "AUTH_OK", "GREETING", "Pop3Session", "dot_stuff", "serve_pop3"]

log = logging.getLogger(__name__)

GREETING = b"+OK The Microsoft Exchange POP3 service is ready.\r\n"
AUTH_OK = b"+OK User successfully authenticated."
AUTH_FAILED = b"-ERR Authentication failure: unknown user name or bad password."
_CAPA = [b"TOP", b"UIDL", b"SASL XOAUTH2 OAUTHBEARER", b"RESP-CODES", b"PIPELINING", b"."]


def dot_stuff(data: bytes) -> bytes:
    """Byte-stuff a message for a multi-line response (lines starting with "." get one more)."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed


class Pop3Session:
    """One POP3 connection."""

    def __init__(
        self, mail: SandboxMail, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.mail = mail
        self.reader = reader
        self.writer = writer
        self.mailbox: StoredMailbox | None = None
        self.drop: list[StoredMessage] = []
        self.deleted: set[int] = set()

    async def send(self, *parts: bytes) -> None:
        """Write and drain in slices (messages may be large)."""
        await write_in_slices(self.writer, *parts)

    async def line(self, text: bytes) -> None:
        """One response line."""
        await self.send(text + b"\r\n")

    async def run(self) -> None:
        """Serve until QUIT or disconnect."""
        await self.send(GREETING)
        while True:
            raw = await self.reader.readline()
            if not raw:
                return
            verb, _, rest = raw.decode("utf-8", "replace").strip().partition(" ")
            handler = getattr(self, "pop_" + verb.upper(), None)
            if handler is None:
                await self.line(b"-ERR Protocol error. 14")
                continue
            if verb.upper() not in ("CAPA", "QUIT", "AUTH", "USER", "PASS", "NOOP", "STLS") and (
                self.mailbox is None
            ):
                await self.line(b"-ERR Command is not valid in this state.")
                continue
            if await handler(rest.strip()):
                return

    # -- authorization state -------------------------------------------------------------------

    async def pop_CAPA(self, arg: str) -> bool:
        await self.send(b"+OK\r\n", b"\r\n".join(_CAPA) + b"\r\n")
        return False

    async def pop_USER(self, arg: str) -> bool:
        # Basic authentication is retired in Exchange Online.
        await self.line(b"-ERR Command is not valid in this state.")
        return False

    async def pop_PASS(self, arg: str) -> bool:
        await self.line(AUTH_FAILED)
        return False

    async def pop_AUTH(self, arg: str) -> bool:
        mechanism, _, initial = arg.partition(" ")
        if self.mailbox is not None:
            await self.line(b"-ERR Command is not valid in this state.")
            return False
        if mechanism.upper() not in ("XOAUTH2", "OAUTHBEARER"):
            await self.line(b"-ERR Unrecognized authentication type.")
            return False
        if not initial:
            await self.send(b"+ \r\n")
            initial = (await self.reader.readline()).decode("ascii", "replace").strip()
            if initial == "*":
                await self.line(b"-ERR Authentication aborted.")
                return False
        try:
            credentials = parse_initial_response(
                mechanism, base64.b64decode(initial, validate=True)
            )
            access = check_access(self.mail, credentials.token, "pop", credentials.user)
        except (binascii.Error, ValueError):
            await self.line(AUTH_FAILED)
            return False
        except MailAccessDenied as denied:
            log.info("POP3 authentication refused: %s", denied.reason)
            await self.line(AUTH_FAILED)
            return False
        self.mailbox = self.mail.store.mailbox(access.mailbox)
        self.drop = self.mailbox.messages("inbox")
        await self.line(AUTH_OK)
        return False

    async def pop_NOOP(self, arg: str) -> bool:
        await self.line(b"+OK")
        return False

    async def pop_QUIT(self, arg: str) -> bool:
        if self.mailbox is not None:
            for index in sorted(self.deleted):
                with contextlib.suppress(KeyError):
                    self.mailbox.remove(self.drop[index - 1].item_id)
        await self.line(b"+OK Microsoft Exchange Server POP3 server signing off.")
        return True

    # -- transaction state ---------------------------------------------------------------------

    def _message(self, arg: str) -> tuple[int, StoredMessage] | None:
        try:
            index = int(arg)
        except ValueError:
            return None
        if not 1 <= index <= len(self.drop) or index in self.deleted:
            return None
        return index, self.drop[index - 1]

    def _live(self) -> list[tuple[int, StoredMessage]]:
        return [(i, m) for i, m in enumerate(self.drop, 1) if i not in self.deleted]

    async def pop_STAT(self, arg: str) -> bool:
        live = self._live()
        await self.line(b"+OK %d %d" % (len(live), sum(m.size for _, m in live)))
        return False

    async def _listing(self, arg: str, render: str) -> None:
        def value(message: StoredMessage) -> str:
            return str(message.size) if render == "size" else message.item_id

        if arg:
            found = self._message(arg)
            if found is None:
                await self.line(b"-ERR No such message.")
                return
            await self.line(f"+OK {found[0]} {value(found[1])}".encode())
            return
        lines = [f"{i} {value(m)}".encode() for i, m in self._live()]
        await self.send(b"+OK\r\n", b"".join(line + b"\r\n" for line in lines), b".\r\n")

    async def pop_LIST(self, arg: str) -> bool:
        await self._listing(arg, "size")
        return False

    async def pop_UIDL(self, arg: str) -> bool:
        await self._listing(arg, "uid")
        return False

    async def pop_RETR(self, arg: str) -> bool:
        found = self._message(arg)
        if found is None:
            await self.line(b"-ERR No such message.")
            return False
        await self.send(b"+OK\r\n", dot_stuff(found[1].raw), b".\r\n")
        return False

    async def pop_TOP(self, arg: str) -> bool:
        number, _, count = arg.partition(" ")
        found = self._message(number)
        if found is None or not count.strip().isdigit():
            await self.line(b"-ERR No such message.")
            return False
        raw = found[1].raw
        end = raw.find(b"\r\n\r\n")
        head, body = (raw, b"") if end < 0 else (raw[: end + 4], raw[end + 4 :])
        lines = body.split(b"\r\n")[: int(count)]
        text = head + b"".join(line + b"\r\n" for line in lines)
        await self.send(b"+OK\r\n", dot_stuff(text), b".\r\n")
        return False

    async def pop_DELE(self, arg: str) -> bool:
        found = self._message(arg)
        if found is None:
            await self.line(b"-ERR No such message.")
            return False
        self.deleted.add(found[0])
        await self.line(b"+OK")
        return False

    async def pop_RSET(self, arg: str) -> bool:
        self.deleted.clear()
        await self.line(b"+OK")
        return False


async def serve_pop3(
    mail: SandboxMail, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Connection handler for ``asyncio.start_server``."""
    await run_session(Pop3Session(mail, reader, writer).run(), writer, log, "POP3")
