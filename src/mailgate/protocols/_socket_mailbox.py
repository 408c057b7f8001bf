"""What the IMAP, POP3 and SMTP adapters share: one socket, one SASL user, one bearer token."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import ClassVar

from mailgate.errors import ConfigurationError
from mailgate.protocols._mailstream import check_security
from mailgate.protocols.base import Mailbox, Security, TokenSource

__all__ = ["SocketMailbox"]


class SocketMailbox(Mailbox):
    """Connection settings and checks of the socket protocols; subclasses add their state.

    ``address`` is the SASL user (``user=`` in XOAUTH2, ``a=`` in OAUTHBEARER): the mailbox,
    which may be a shared one. Plain (unencrypted) connections are refused except to loopback.
    """

    default_security: ClassVar[Security] = Security.TLS

    def __init__(
        self,
        address: str,
        host: str,
        port: int,
        *,
        token_source: TokenSource,
        security: Security | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mechanism: str = "XOAUTH2",
        timeout: float = 30.0,
        ca_files: Sequence[str] | None = None,
    ) -> None:
        if mechanism.upper() not in ("XOAUTH2", "OAUTHBEARER"):
            raise ConfigurationError(
                f"Unsupported SASL mechanism {mechanism!r}.", "use XOAUTH2 or OAUTHBEARER."
            )
        security = security or self.default_security
        check_security(host, security)
        self.address = address
        self.host = host
        self.port = port
        self.security = security
        self.ssl_context = ssl_context
        self.mechanism = mechanism.upper()
        self.timeout = timeout
        # The CA files ``ssl_context`` trusts besides the system's, so that another process can
        # build the same context (helper connections); None when that is not known.
        self.ca_files: tuple[str, ...] | None = (
            tuple(ca_files) if ca_files is not None else (() if ssl_context is None else None)
        )
        self._token_source = token_source
        self._init_state()

    async def access_token(self) -> str:
        """The bearer token this mailbox signs in with (from its token source)."""
        return await self._token_source()

    def _init_state(self) -> None:
        """Set the subclass's own connection state (called at the end of ``__init__``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r}, {self.host!r}, {self.port})"
