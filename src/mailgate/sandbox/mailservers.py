"""Run the sandbox's IMAP, POP3 and SMTP servers on one asyncio loop in a background thread.

Sockets are bound before :meth:`MailServers.start` returns (port 0 picks a free port), like
the HTTPS server, so the ports can go into ``sandbox.json`` at once. IMAP and POP3 use
implicit TLS; SMTP starts in plain text and requires STARTTLS, as submission on port 587 does.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
from pathlib import Path

from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.imap.server import MAX_LINE, serve_imap
from mailgate.sandbox.pop3.server import serve_pop3
from mailgate.sandbox.smtp.server import create_smtp

__all__ = ["MailServers"]


def _bind(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


class MailServers:
    """IMAP (TLS), POP3 (TLS) and SMTP (STARTTLS) over one :class:`SandboxMail`."""

    def __init__(self, mail: SandboxMail, cert_file: Path, key_file: Path, host: str = "127.0.0.1"):
        self.mail = mail
        self.host = host
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(str(cert_file), str(key_file))
        self.ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []

    def start(self) -> None:
        """Bind the three sockets and serve them until :meth:`stop`."""
        sockets = {name: _bind(self.host) for name in ("imap", "pop3", "smtp")}
        self.ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        async def serve() -> None:
            imap = functools.partial(serve_imap, self.mail)
            pop3 = functools.partial(serve_pop3, self.mail)
            self._servers = [
                await asyncio.start_server(
                    imap, sock=sockets["imap"], ssl=self.tls, limit=MAX_LINE
                ),
                await asyncio.start_server(pop3, sock=sockets["pop3"], ssl=self.tls),
                await loop.create_server(
                    lambda: create_smtp(self.mail, self.tls, loop), sock=sockets["smtp"]
                ),
            ]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            starting = loop.create_task(serve())
            loop.run_forever()
            del starting
            loop.close()

        self._thread = threading.Thread(target=run, name="mailgate-sandbox-mail", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the sandbox mail servers failed to start")

    def stop(self) -> None:
        """Close the servers and their connections, stop the loop; safe to call twice."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._loop = self._thread = None
