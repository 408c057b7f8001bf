"""POP3 adapter: :class:`Pop3Mailbox` with AUTH XOAUTH2, over the shared :mod:`_mailstream`.

POP3 sees one folder (the Inbox) and no flags: search filters on the client from ``TOP n 0``
headers, ``fetch_mime`` streams ``RETR`` line by line (undoing dot-stuffing) to the file, and
``delete_permanently`` is ``DELE`` committed by ``QUIT`` (the adapter then reconnects).
Everything else raises :class:`UnsupportedOperation` pointing at IMAP. Message ids are UIDLs.

SASL: ``AUTH XOAUTH2`` without an initial response, then the base64 response after ``+``
(Exchange's documented exchange, which Dovecot also accepts); a second ``+`` is a failure
challenge (Dovecot) and is answered with an empty line before the final ``-ERR``.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import ssl
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import AddressHeader
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import BinaryIO, ClassVar

from mailgate.errors import ConfigurationError, MailgateError, ProtocolError
from mailgate.protocols._mailstream import MailStream, open_stream
from mailgate.protocols._socket_mailbox import SocketMailbox
from mailgate.protocols.base import (
    Folder,
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    MessageSummary,
    Operation,
    Protocol,
    SearchCriteria,
    Security,
)
from mailgate.protocols.sasl import oauthbearer_initial_response, xoauth2_initial_response

__all__ = ["INBOX", "Pop3Mailbox", "parse_uidl", "pop3_failure", "summary_from_headers", "unstuff"]

INBOX = "INBOX"
_AUTH_REMEDY = (
    "check that the token is for https://outlook.office365.com with POP.AccessAsUser.All "
    "(delegated) or POP.AccessAsApp (app-only, with New-ServicePrincipal and FullAccess on the "
    "mailbox), and that POP3 is enabled for the mailbox; run `mailgate test` for a diagnosis."
)


def unstuff(line: bytes) -> bytes:
    """Undo POP3 dot-stuffing of one line of a multi-line reply (RFC 1939 section 3)."""
    return line[1:] if line.startswith(b"..") else line


def parse_uidl(lines: Sequence[bytes]) -> dict[int, str]:
    """``UIDL`` listing lines (``"1 000001a2"``) → message number → unique id."""
    out: dict[int, str] = {}
    for line in lines:
        number, _, uid = line.decode("ascii", "replace").strip().partition(" ")
        if not number.isdigit() or not uid:
            raise ProtocolError(
                f"The POP3 server sent a malformed UIDL line {line[:80]!r}.", "use IMAP instead."
            )
        out[int(number)] = uid.strip()
    return out


def pop3_failure(reply: str, phase: str) -> MailgateError:
    """Map ``-ERR`` to the caller's error: during AUTH a refused token, later no access."""
    if phase == "auth":
        return MailAuthenticationError(
            f"The POP3 server refused the token: {reply}", _AUTH_REMEDY, reply=reply
        )
    if "not connected" in reply.lower() or "logon failure" in reply.lower():
        return MailboxAccessError(
            f"Authenticated, but the server will not open the mailbox: {reply}",
            "check the mailbox address and that the user or app has FullAccess on it.",
            reply=reply,
        )
    return ProtocolError(f"POP3 {phase} failed: {reply}", "retry, or use IMAP.")


def _addresses(header: object) -> tuple[str, ...]:
    if isinstance(header, AddressHeader):
        return tuple(a.addr_spec for a in header.addresses if a.addr_spec)
    return ()


def summary_from_headers(ref: MessageRef, header_bytes: bytes, size: int | None) -> MessageSummary:
    """A summary from a ``TOP n 0`` header block; attachments guessed from multipart/mixed."""
    headers = BytesHeaderParser(policy=default_policy).parsebytes(header_bytes)

    def get(name: str) -> object:
        try:
            return headers[name]
        except (ValueError, IndexError, TypeError):
            return None

    date: datetime | None = None
    if headers.get("Date"):
        try:
            date = email.utils.parsedate_to_datetime(str(headers["Date"]))
        except (TypeError, ValueError):
            date = None
    senders = _addresses(get("From"))
    return MessageSummary(
        ref=ref,
        subject=str(get("Subject") or ""),
        from_address=senders[0] if senders else "",
        to=_addresses(get("To")),
        cc=_addresses(get("Cc")),
        date=date,
        message_id=str(get("Message-ID") or "").strip() or None,
        size=size,
        has_attachments=headers.get_content_type() == "multipart/mixed",
    )


def _matches(summary: MessageSummary, criteria: SearchCriteria) -> bool:
    if criteria.from_address and criteria.from_address.lower() not in summary.from_address.lower():
        return False
    if criteria.subject_contains and (
        criteria.subject_contains.lower() not in summary.subject.lower()
    ):
        return False
    if criteria.since and (summary.date is None or summary.date < criteria.since):
        return False
    if criteria.before and (summary.date is None or summary.date >= criteria.before):
        return False
    return not (
        criteria.has_attachments is not None and criteria.has_attachments != summary.has_attachments
    )


class Pop3Mailbox(SocketMailbox):
    """The Inbox of one mailbox over POP3; ``address`` is the SASL user."""

    protocol: ClassVar[Protocol] = Protocol.POP3
    operations: ClassVar[frozenset[Operation]] = frozenset(
        {Operation.LIST_FOLDERS, Operation.SEARCH, Operation.FETCH, Operation.DELETE_PERMANENTLY}
    )

    def _init_state(self) -> None:
        self._stream: MailStream | None = None
        self._uidl: dict[str, int] = {}

    @property
    def stream(self) -> MailStream:
        if self._stream is None:
            raise ProtocolError("The POP3 mailbox is not connected.", "use `async with`.")
        return self._stream

    async def _reply(self, phase: str) -> str:
        line = (await self.stream.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if not line.startswith("+"):
            raise pop3_failure(line, phase)
        return line

    async def _command(self, line: str, phase: str) -> str:
        await self.stream.write(line.encode("utf-8") + b"\r\n")
        return await self._reply(phase)

    async def _lines(self) -> list[bytes]:
        out: list[bytes] = []
        while (line := await self.stream.readline()) not in (b".\r\n", b".\n"):
            out.append(unstuff(line).rstrip(b"\r\n"))
        return out

    async def connect(self) -> None:
        self._stream = await open_stream(
            self.host, self.port, self.security, self.ssl_context, self.timeout
        )
        try:
            await self._reply("greeting")
            if self.security is Security.STARTTLS:
                await self._command("STLS", "STLS")
                await self.stream.start_tls(self.ssl_context or ssl.create_default_context())
            token = await self._token_source()
            if self.mechanism == "OAUTHBEARER":
                initial = oauthbearer_initial_response(self.address, token)
            else:
                initial = xoauth2_initial_response(self.address, token)
            await self._authenticate(base64.b64encode(initial))
            await self._command("STAT", "STAT")  # reveals a mailbox that cannot be opened
            await self._load_uidl()
        except BaseException:
            await self.close()
            raise

    async def _authenticate(self, encoded: bytes) -> None:
        await self.stream.write(f"AUTH {self.mechanism}\r\n".encode("ascii"))
        sent = False
        while True:
            line = (await self.stream.readline()).decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("+OK"):
                return
            if not line.startswith("+"):
                raise pop3_failure(line, "auth")
            # First "+" asks for the response; a later one is a failure challenge.
            await self.stream.write(b"\r\n" if sent else encoded + b"\r\n")
            sent = True

    async def _load_uidl(self) -> None:
        await self._command("UIDL", "UIDL")
        self._uidl = {uid: n for n, uid in parse_uidl(await self._lines()).items()}

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        if not stream.closed:
            self._stream = stream
            # Closing anyway; the server may have gone already.
            with contextlib.suppress(MailgateError):
                await self._command("QUIT", "QUIT")
            self._stream = None
        await stream.close()

    def _number(self, ref: MessageRef) -> int:
        if ref.folder.upper() != INBOX:
            raise ConfigurationError(
                f"POP3 only sees the Inbox, not {ref.folder!r}.", "use IMAP for other folders."
            )
        try:
            return self._uidl[ref.id]
        except KeyError:
            raise ProtocolError(
                f"Message {ref.id} is no longer in the Inbox.", "search again."
            ) from None

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        if folder.upper() != INBOX:
            raise self._unsupported(Operation.SEARCH, "POP3 only sees the Inbox; use IMAP.")
        if criteria.unread is not None:
            raise self._unsupported(
                Operation.SEARCH, "POP3 has no read/unread state; use IMAP to filter on it."
            )
        await self._load_uidl()
        refs = [MessageRef(INBOX, uid) for uid, _ in sorted(self._uidl.items(), key=lambda i: i[1])]
        if criteria != SearchCriteria():
            summaries = await self.fetch_headers(refs)
            refs = [s.ref for s in summaries if _matches(s, criteria)]
        return refs[:limit] if limit is not None else refs

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        out: list[MessageSummary] = []
        for ref in refs:
            number = self._number(ref)
            size_reply = await self._command(f"LIST {number}", "LIST")
            parts = size_reply.split()
            size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
            await self._command(f"TOP {number} 0", "TOP")
            headers = b"\r\n".join(await self._lines()) + b"\r\n"
            out.append(summary_from_headers(ref, headers, size))
        return out

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        number = self._number(ref)
        await self._command(f"RETR {number}", "RETR")
        written = 0
        while True:
            line = await self.stream.readline("reading a message")
            if line in (b".\r\n", b".\n"):
                return written
            data = unstuff(line)
            dest.write(data)
            written += len(data)

    async def delete_permanently(self, refs: Sequence[MessageRef]) -> None:
        """Delete all of ``refs`` or none: every ref is checked before the first ``DELE``.

        ``DELE`` only marks; ``QUIT`` commits. If one ``DELE`` fails, ``RSET`` unmarks the
        earlier ones, since :meth:`close` would otherwise commit them with its ``QUIT``.
        """
        numbers = list(dict.fromkeys(self._number(ref) for ref in refs))
        try:
            for number in numbers:
                await self._command(f"DELE {number}", "DELE")
        except MailgateError:
            await self._unmark()
            raise
        except BaseException:
            # Cancelled mid-command: the reply stream is out of step, so leave without QUIT.
            await self._abandon()
            raise
        await self._command("QUIT", "QUIT")  # POP3 deletes only on QUIT
        await self.stream.close()
        self._stream = None
        await self.connect()

    async def _unmark(self) -> None:
        try:
            await self._command("RSET", "RSET")
        except MailgateError:
            await self._abandon()  # the failed DELE stays the error the caller sees
        except BaseException:
            await self._abandon()
            raise

    async def _abandon(self) -> None:
        """Drop the connection without QUIT: the server then commits none of the DELEs."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()

    async def list_folders(self) -> list[Folder]:
        """The one folder POP3 has."""
        return [Folder(name=INBOX, id=INBOX, special_use="\\Inbox", total=len(self._uidl))]
