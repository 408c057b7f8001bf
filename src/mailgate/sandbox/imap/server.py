"""The sandbox's IMAP4rev1 server over implicit TLS, answering like Exchange Online.

A compact asyncio server of our own rather than pymap: pymap brings its own backends, login
and session model, while this server must share one thread-safe store with POP3/SMTP/Graph/EWS,
authenticate only through :func:`~mailgate.sandbox.exchange.rules.check_access`, and reproduce
Exchange's quirks ("authenticated but not connected"). The protocol pieces are pure
(:mod:`.codec`, :mod:`.mime`, :mod:`.query`); this module is the thin I/O part and
the per-command handlers ``imap_<VERB>``, dispatched like aiosmtpd's ``smtp_<VERB>``.

Literals are read with ``readexactly`` and handed to the parser as they are, and message
bytes are written in 1 MiB slices with ``drain``, so a 50 MB message is held at most about
twice (the store's copy plus one being read or sliced).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mailgate.protocols.sasl import parse_initial_response
from mailgate.sandbox._streams import run_session, write_in_slices
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import MailAccessDenied, check_access
from mailgate.sandbox.exchange.store import StoredFolder, StoredMailbox, StoredMessage
from mailgate.sandbox.imap.codec import (
    LITERAL_AT_END,
    Command,
    ImapSyntaxError,
    as_text,
    in_ranges,
    parse_command,
    parse_sequence_set,
)
from mailgate.sandbox.imap.commands import ImapFolderCommands

__all__ = [
    "CAPABILITIES",
    "CAPABILITIES_AUTHENTICATED",
    "GREETING",
    "MAX_LINE",
    "NOT_CONNECTED",
    "ImapSession",
    "serve_imap",
]

log = logging.getLogger(__name__)

GREETING = (
    b"* OK The Microsoft Exchange IMAP4 service is ready. "
    b"[UwBBAE4ARABCAE8AWAAuAE0AQQBJAEwARwBBAFQARQA=]\r\n"
)
NOT_CONNECTED = b"BAD User is authenticated but not connected."
CAPABILITIES = "IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER SASL-IR IDLE MOVE UIDPLUS SPECIAL-USE"
CAPABILITIES_AUTHENTICATED = "IMAP4rev1 IDLE MOVE UIDPLUS SPECIAL-USE LITERAL+ UNSELECT CHILDREN"
# Refusals of the token itself; other denials authenticate and then fail every command.
_TOKEN_REASONS = {
    "invalid_token",
    "wrong_audience",
    "missing_permission",
    "service_principal_not_registered",
}
_MAX_LINE = 1 << 20


class ImapSession(ImapFolderCommands):
    """One client connection; ``state`` is auth, notconnected, authenticated or selected."""

    def __init__(
        self, mail: SandboxMail, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.mail = mail
        self.reader = reader
        self.writer = writer
        self.state = "auth"
        self.mailbox: StoredMailbox | None = None
        self.selected: StoredFolder | None = None
        self.readonly = False
        self.uids: list[int] = []
        self.tag = "*"

    # -- I/O -----------------------------------------------------------------------------------

    async def send(self, *parts: bytes) -> None:
        """Write parts, slicing big ones so the TLS layer never buffers a whole message."""
        await write_in_slices(self.writer, *parts)

    async def untagged(self, text: bytes) -> None:
        """``* text``."""
        await self.send(b"* " + text + b"\r\n")

    async def read_command(self) -> list[bytes] | None:
        """Text and literal segments of the next command; None at end of stream."""
        segments: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\n")
            segments.append(line)
            found = LITERAL_AT_END.search(line)
            if found is None:
                return segments
            if not found.group(2):
                await self.send(b"+ Ready for additional command text.\r\n")
            segments.append(await self.reader.readexactly(int(found.group(1))))

    async def run(self) -> None:
        """Greet, then serve commands until LOGOUT or disconnect."""
        await self.send(GREETING)
        while True:
            try:
                segments = await self.read_command()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except (asyncio.LimitOverrunError, ValueError):
                await self.send(b"* BAD Command line too long.\r\n")
                return
            if segments is None:
                return
            try:
                command = parse_command(segments)
            except ImapSyntaxError:
                await self.send(b"* BAD Command Error. 10\r\n")
                continue
            self.tag = command.tag
            if await self.dispatch(command):
                return

    async def reply(self, status: str, text: str) -> None:
        """The tagged completion."""
        await self.send(f"{self.tag} {status} {text}\r\n".encode())

    # -- dispatch ------------------------------------------------------------------------------

    async def dispatch(self, command: Command) -> bool:
        """Run one command; True when the connection should close."""
        verb = command.verb
        args = command.args
        if verb == "UID" and args:
            verb, args = "UID_" + as_text(args[0]).upper(), args[1:]
        if self.state == "notconnected" and verb != "LOGOUT":
            await self.send(self.tag.encode() + b" " + NOT_CONNECTED + b"\r\n")
            return False
        handler: Callable[[list[object]], Awaitable[None]] | None = getattr(
            self, "imap_" + verb, None
        )
        if handler is None:
            await self.reply("BAD", "Command Error. 12")
            return False
        needs = getattr(handler, "needs", "any")
        if (needs == "auth" and self.state == "auth") or (
            needs == "selected" and self.state != "selected"
        ):
            await self.reply("BAD", "Command received in Invalid state.")
            return False
        try:
            await handler(args)
        except (ImapSyntaxError, IndexError) as exc:
            await self.reply("BAD", f"Command Argument Error. 11 {exc}".strip())
        except KeyError:
            await self.reply("NO", "[TRYCREATE] Folder doesn't exist.")
        return verb == "LOGOUT"

    # -- any state -----------------------------------------------------------------------------

    async def imap_CAPABILITY(self, args: list[object]) -> None:
        caps = CAPABILITIES if self.state == "auth" else CAPABILITIES_AUTHENTICATED
        await self.untagged(f"CAPABILITY {caps}".encode())
        await self.reply("OK", "CAPABILITY completed.")

    async def imap_NOOP(self, args: list[object]) -> None:
        await self.sync()
        await self.reply("OK", "NOOP completed.")

    async def imap_LOGOUT(self, args: list[object]) -> None:
        await self.untagged(b"BYE Microsoft Exchange Server IMAP4 server signing off.")
        await self.reply("OK", "LOGOUT completed.")

    async def imap_ID(self, args: list[object]) -> None:
        await self.untagged(b'ID ("name" "Microsoft.Exchange.Imap4.Imap4Server")')
        await self.reply("OK", "ID completed.")

    # -- authentication ------------------------------------------------------------------------

    async def imap_LOGIN(self, args: list[object]) -> None:
        # Basic authentication is retired in Exchange Online; the reply stays the old one.
        await self.reply("NO", "LOGIN failed.")

    async def imap_AUTHENTICATE(self, args: list[object]) -> None:
        if self.state != "auth":
            await self.reply("BAD", "Command received in Invalid state.")
            return
        mechanism = as_text(args[0]).upper()
        if mechanism not in ("XOAUTH2", "OAUTHBEARER"):
            await self.reply("NO", "LOGIN failed.")
            return
        if len(args) > 1:
            response = as_text(args[1])
        else:
            await self.send(b"+ \r\n")
            response = (await self.reader.readuntil(b"\n")).decode("ascii", "replace").strip()
            if response == "*":
                await self.reply("BAD", "AUTHENTICATE aborted.")
                return
        try:
            credentials = parse_initial_response(
                mechanism, base64.b64decode(response, validate=True)
            )
            access = check_access(self.mail, credentials.token, "imap", credentials.user)
        except (binascii.Error, ValueError):
            await self.reply("NO", "AUTHENTICATE failed.")
            return
        except MailAccessDenied as denied:
            log.info("IMAP authentication refused: %s", denied.reason)
            if denied.reason in _TOKEN_REASONS:
                await self.reply("NO", "AUTHENTICATE failed.")
                return
            self.state = "notconnected"
            await self.reply("OK", "AUTHENTICATE completed.")
            return
        self.mailbox = self.mail.store.mailbox(access.mailbox)
        self.state = "authenticated"
        await self.reply("OK", "AUTHENTICATE completed.")

    # -- selected state: sequence numbers and updates ------------------------------------------

    def current(self) -> list[StoredMessage]:
        """Messages of the selected folder, by UID."""
        assert self.mailbox is not None and self.selected is not None
        return self.mailbox.messages(self.selected.folder_id)

    async def sync(self) -> None:
        """Tell the client about messages that vanished (EXPUNGE) or arrived (EXISTS)."""
        if self.state != "selected":
            return
        present = {m.uid for m in self.current()}
        for seq in range(len(self.uids), 0, -1):
            if self.uids[seq - 1] not in present:
                del self.uids[seq - 1]
                await self.untagged(f"{seq} EXPUNGE".encode())
        known = set(self.uids)
        new = sorted(present - known)
        if new:
            self.uids.extend(new)
            await self.untagged(f"{len(self.uids)} EXISTS".encode())

    def resolve(self, text: str, by_uid: bool) -> list[tuple[int, StoredMessage]]:
        """(sequence number, message) pairs a sequence set names in the selected folder."""
        messages = {m.uid: m for m in self.current()}
        known = [(i + 1, messages[u]) for i, u in enumerate(self.uids) if u in messages]
        if by_uid:
            largest = self.uids[-1] if self.uids else 0
            ranges = parse_sequence_set(text, largest)
            return [(s, m) for s, m in known if in_ranges(m.uid, ranges)]
        ranges = parse_sequence_set(text, len(self.uids))
        return [(s, m) for s, m in known if in_ranges(s, ranges)]

    async def imap_IDLE(self, args: list[object]) -> None:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def notify() -> None:
            # Called from whichever thread changed the store.
            loop.call_soon_threadsafe(changed.set)

        unsubscribe: Callable[[], None] = lambda: None  # noqa: E731 - replaced when selected
        if self.state == "selected" and self.mailbox is not None and self.selected is not None:
            unsubscribe = self.mailbox.subscribe(self.selected.folder_id, notify)
        await self.send(b"+ IDLE accepted, awaiting DONE command.\r\n")
        done = asyncio.ensure_future(self.reader.readuntil(b"\n"))
        try:
            while True:
                waiter = asyncio.ensure_future(changed.wait())
                finished, _ = await asyncio.wait(
                    {done, waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter in finished:
                    changed.clear()
                    await self.sync()
                else:
                    waiter.cancel()
                    break
        finally:
            unsubscribe()
            if not done.done():
                done.cancel()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            line = done.result()
            if line.strip().upper() != b"DONE":
                await self.reply("BAD", "Expected DONE.")
                return
        await self.reply("OK", "IDLE completed.")


async def serve_imap(
    mail: SandboxMail, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Connection handler for ``asyncio.start_server``."""
    await run_session(ImapSession(mail, reader, writer).run(), writer, log, "IMAP")


MAX_LINE = _MAX_LINE
