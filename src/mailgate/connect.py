"""From a mailbox profile to a ready (not yet connected) protocol adapter.

Resolves the server (profile, else the cloud's published default, else the running sandbox's
description), the TLS trust (system CAs, plus the profile's or the sandbox's CA), and the token
each protocol needs: app-only credentials ask for ``<resource>/.default``; delegated ones ask for
the protocol's own permission (``IMAP.AccessAsUser.All`` ...) on the resource the credential was
set up with, so one signed-in credential serves IMAP and SMTP alike.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.identity.clouds import load_sandbox_description
from mailgate.mailboxes import DEFAULT_PORTS, MailboxProfile
from mailgate.paths import sandbox_description_file
from mailgate.protocols.base import Mailbox, Protocol, Security

if TYPE_CHECKING:
    from mailgate.identity.clouds import Cloud
    from mailgate.identity.tokens import AccessToken, TokenProvider
    from mailgate.vault import CredentialProfile

__all__ = ["Endpoint", "MailboxConnector", "protocol_scopes"]

_DELEGATED_PERMISSION = {
    Protocol.IMAP: "IMAP.AccessAsUser.All",
    Protocol.POP3: "POP.AccessAsUser.All",
    Protocol.SMTP: "SMTP.Send",
    Protocol.EWS: "EWS.AccessAsUser.All",
}
_GRAPH_DELEGATED = ("Mail.ReadWrite", "Mail.Send")


def protocol_scopes(protocol: Protocol, credential: CredentialProfile, cloud: Cloud) -> str:
    """The scope string to request for ``protocol`` with ``credential``."""
    if protocol is Protocol.GRAPH:
        if credential.app_only:
            return f"{cloud.graph_resource}/.default"
        return " ".join(f"{cloud.graph_resource}/{p}" for p in _GRAPH_DELEGATED)
    resource = cloud.exchange_resource
    if credential.app_only:
        return f"{resource}/.default"
    configured = {s.rsplit("/", 1)[0] for s in credential.scopes if s.startswith("https://")}
    exchange_hosts = {resource, "https://outlook.office.com", "https://outlook.office365.com"}
    if len(configured) == 1 and configured <= exchange_hosts:
        resource = configured.pop()  # keep the host the user consented on
    return f"{resource}/{_DELEGATED_PERMISSION[protocol]}"


@dataclass(frozen=True)
class Endpoint:
    """Where a protocol adapter connects: host/port/security, or a base URL."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    url: str | None = None

    def describe(self) -> str:
        if self.url:
            return self.url
        return f"{self.host}:{self.port} ({self.security.value})"


def _split_host(value: str, protocol: Protocol) -> tuple[str, int | None]:
    text = value.strip()
    if "://" in text:
        raise InvalidInputError(
            "server", f"host[:port] for {protocol.value.upper()}, without a scheme", value
        )
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host:
        host, port = text, ""
    if port and not port.isdigit():
        raise InvalidInputError("server", "host[:port] with a numeric port", value)
    return host, int(port) if port else None


def _socket_adapter_class(protocol: Protocol) -> Callable[..., Mailbox]:
    # Imported on use: a CLI run for one protocol does not load the others.
    if protocol is Protocol.IMAP:
        from mailgate.protocols.imap.adapter import ImapMailbox

        return ImapMailbox
    if protocol is Protocol.POP3:
        from mailgate.protocols.pop3 import Pop3Mailbox

        return Pop3Mailbox
    from mailgate.protocols.smtp import SmtpMailbox

    return SmtpMailbox


class MailboxConnector:
    """Builds adapters for mailbox profiles, with tokens from a :class:`TokenProvider`."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider
        self._contexts: dict[tuple[str, ...], Future[ssl.SSLContext]] = {}

    @property
    def _sandbox_file(self) -> Path:
        return self.provider.sandbox_file or sandbox_description_file()

    def _sandbox_mail(self) -> dict[str, object]:
        description = load_sandbox_description(self._sandbox_file)
        mail = description.get("mail")
        if not isinstance(mail, dict):
            raise ConfigurationError(
                "the running sandbox has no mail endpoints.", "upgrade and restart it."
            )
        return mail

    def endpoint(self, profile: MailboxProfile) -> Endpoint:
        credential = self.provider.vault.get(profile.credential)
        cloud = self.provider.cloud(credential)
        protocol = profile.protocol
        if protocol in (Protocol.EWS, Protocol.GRAPH):
            url = profile.server or self._default_url(protocol, cloud)
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise InvalidInputError("server", "an https:// URL", url)
            return Endpoint(protocol, parts.hostname, parts.port or 443, Security.TLS, url)
        default_security = Security.STARTTLS if protocol is Protocol.SMTP else Security.TLS
        security = profile.security or default_security
        if profile.server:
            host, port = _split_host(profile.server, protocol)
        elif cloud.is_sandbox:
            key = {Protocol.IMAP: "imap", Protocol.POP3: "pop3", Protocol.SMTP: "smtp"}[protocol]
            entry = self._sandbox_mail().get(key)
            if not isinstance(entry, dict):
                raise ConfigurationError(f"the sandbox serves no {key}.", "restart it.")
            host, port = str(entry["host"]), int(entry["port"])
            security = profile.security or Security(str(entry.get("security", security)))
        else:
            host = (
                cloud.smtp_host
                if protocol is Protocol.SMTP
                else (urlsplit(cloud.exchange_resource).hostname or "")
            )
            port = None
        return Endpoint(protocol, host, port or DEFAULT_PORTS[(protocol, security)], security)

    def _default_url(self, protocol: Protocol, cloud: Cloud) -> str:
        if cloud.is_sandbox:
            key = "ews_url" if protocol is Protocol.EWS else "graph_url"
            return str(self._sandbox_mail()[key])
        if protocol is Protocol.EWS:
            return f"{cloud.exchange_resource}/EWS/Exchange.asmx"
        return f"{cloud.graph_resource}/v1.0"

    def ca_files(self, profile: MailboxProfile) -> tuple[str, ...]:
        """The CA files trusted for ``profile`` besides the system's (its own, the sandbox's)."""
        credential = self.provider.vault.get(profile.credential)
        cloud = self.provider.cloud(credential)
        return tuple(str(extra) for extra in (profile.ca_file, cloud.ca_file) if extra)

    def ssl_context(self, profile: MailboxProfile) -> ssl.SSLContext:
        """The TLS trust for ``profile``: the system's CAs and its extra ones (shared by the
        adapters of profiles with the same extra CAs; a bad CA file raises here)."""
        return self._context(self.ca_files(profile)).result()

    def prepare(self, profile: MailboxProfile) -> None:
        """Start building ``profile``'s TLS trust now, in a thread: loading the system CA bundle
        takes ~20 ms and releases the GIL, so a command that calls this first has it ready by
        the time it connects."""
        self._context(self.ca_files(profile))

    def _context(self, ca_files: tuple[str, ...]) -> Future[ssl.SSLContext]:
        future = self._contexts.get(ca_files)
        if future is None:
            future = self._contexts[ca_files] = Future()

            def build() -> None:
                try:
                    context = ssl.create_default_context()
                    for extra in ca_files:
                        context.load_verify_locations(cafile=extra)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(context)

            # Not a daemon: a command that fails at once (a bad --since) would otherwise exit
            # while OpenSSL is still loading the bundle in this thread, and the interpreter's
            # shutdown under it crashed the process (SIGSEGV after the error was printed).
            # Exit now waits for the load, ~20 ms at most.
            threading.Thread(target=build, name="mailgate-tls-trust").start()
        return future

    async def token(self, profile: MailboxProfile) -> AccessToken:
        credential = self.provider.vault.get(profile.credential)
        scopes = protocol_scopes(profile.protocol, credential, self.provider.cloud(credential))
        return await self.provider.acquire_async(profile.credential, scopes)

    def adapter(self, profile: MailboxProfile) -> Mailbox:
        """The protocol adapter for ``profile`` (call ``connect()`` or use ``async with``)."""
        endpoint = self.endpoint(profile)
        context = self.ssl_context(profile)
        credential = self.provider.vault.get(profile.credential)

        async def token_source() -> str:
            return (await self.token(profile)).value.reveal()

        if profile.protocol in (Protocol.IMAP, Protocol.POP3, Protocol.SMTP):
            adapter_class = _socket_adapter_class(profile.protocol)
            return adapter_class(
                profile.address,
                endpoint.host,
                endpoint.port,
                token_source=token_source,
                security=endpoint.security,
                ssl_context=context,
                ca_files=self.ca_files(profile),
            )
        if profile.protocol is Protocol.EWS:
            from mailgate.protocols.ews.adapter import EwsMailbox

            return EwsMailbox(
                profile.address,
                str(endpoint.url),
                token_source=token_source,
                app_only=credential.app_only,
                ssl_context=context,
            )
        from mailgate.protocols.graph.adapter import GraphMailbox

        return GraphMailbox(
            profile.address, str(endpoint.url), token_source=token_source, ssl_context=context
        )
