"""What the Graph and EWS adapters share: one HTTP client per connection, bearer auth, a probe."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpx

from mailgate.errors import ProtocolError
from mailgate.protocols.base import Mailbox, TokenSource
from mailgate.protocols.transport import create_client

__all__ = ["HttpMailbox"]


class HttpMailbox(Mailbox):
    """Client lifecycle for the HTTP protocols; subclasses say how to probe and what to forget.

    ``connect()`` opens the client and proves access with :meth:`_probe` (so a refused token or
    an inaccessible mailbox surfaces at connect, as with IMAP); a failed probe closes again.
    """

    def __init__(
        self,
        address: str,
        *,
        token_source: TokenSource,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.address = address
        self._token_source = token_source
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests replace it

    def _client_options(self) -> tuple[str, dict[str, str]]:
        """The base URL and default headers of the client."""
        return "", {}

    async def _probe(self) -> None:
        """One cheap request that proves the token and the mailbox work."""

    def _forget(self) -> None:
        """Drop what was cached for this connection (folder ids, paths)."""

    async def connect(self) -> None:
        if self._client is None:
            base_url, headers = self._client_options()
            self._client = create_client(
                token_source=self._token_source,
                base_url=base_url,
                ssl_context=self._ssl_context,
                timeout=self._timeout,
                transport=self._transport,
                headers=headers,
            )
        try:
            await self._probe()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        self._forget()
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            name = type(self).__name__
            raise ProtocolError(
                f"The {self.protocol.value.upper()} mailbox is not connected.",
                f"use `async with {name}(...)`.",
            )
        return self._client
