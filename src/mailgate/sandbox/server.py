"""Run the sandbox identity platform over HTTPS on 127.0.0.1, in a thread or in the foreground.

:class:`SandboxServer` creates the state directory's key material and demo tenant if missing,
binds its socket before :meth:`SandboxServer.start` returns (port 0 picks a free port), and
writes ``state_dir/sandbox.json`` (mode 0600, it holds the demo secrets) describing where
everything is. Schema, version 1::

    {"version": 1, "base_url": "https://127.0.0.1:PORT", "authority_host": "127.0.0.1:PORT",
     "ca_file": str, "tenant_file": str,
     "endpoints": {"stats": url, "device_approve": url, "devicelogin": url},
     "resources": {"exchange": "https://outlook.office365.com",
                   "graph": "https://graph.microsoft.com"},
     "tenants": [{"id", "name", "domains", "authority", "token_endpoint",
                  "authorize_endpoint", "devicecode_endpoint",
                  "apps": [{"name", "client_id", "object_id", "service_principal_id",
                            "public_client_flows", "redirect_uris",
                            "secrets": [{"key_id", "value", "expires", "expired"}],
                            "certificates": [{"cert_file", "key_file", "pfx_file",
                                              "pfx_password", "thumbprint_sha1",
                                              "thumbprint_sha256"}]}],
                  "users": [{"upn", "password", "display_name", "object_id", "state",
                             "directory_roles"}],
                  "mailboxes": [{"address", "owner", "shared", "smtp_auth_enabled"}]}],
     "mail": {"imap": {"host", "port", "security": "tls"},
              "pop3": {"host", "port", "security": "tls"},
              "smtp": {"host", "port", "security": "starttls"},
              "ews_url": "{base_url}/EWS/Exchange.asmx", "graph_url": "{base_url}/v1.0"}}

File paths are absolute; ``key_file``/``pfx_file``/``pfx_password`` are null when unknown;
thumbprints are upper-case hex as the Azure portal shows them.

One sandbox per state directory: a running server holds an exclusive lock on
``state_dir/sandbox.lock`` (a second server on the same directory is refused) and removes
``sandbox.json`` when it stops, so the description only exists while it describes a live server
(after a kill, the lock is free: :func:`mailgate.fileio.lock_is_held` tells a stale description).
Bad local input (a port in use or out of range, a state directory that is a file, a tenant file
that does not parse) is a :class:`~mailgate.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import uvicorn

from mailgate.errors import ConfigurationError
from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.sandbox.app import create_app
from mailgate.sandbox.directory.resources import EXCHANGE, GRAPH
from mailgate.sandbox.directory.state import DirectoryState
from mailgate.sandbox.directory.tenant import (
    App,
    Tenant,
    TenantFile,
    load_tenant_file,
    write_demo_tenant,
)
from mailgate.sandbox.entra.identity_platform import IdentityPlatform
from mailgate.sandbox.entra.tokens import TokenSigner
from mailgate.sandbox.exchange.access import SandboxMail, build_store
from mailgate.sandbox.mailservers import MailServers
from mailgate.sandbox.pki import ensure_pki, load_certificate, thumbprint_sha1, thumbprint_sha256

__all__ = ["DESCRIPTION_FILE", "LOCK_FILE", "SandboxServer", "describe", "run_forever"]

DESCRIPTION_FILE = "sandbox.json"
LOCK_FILE = "sandbox.lock"
# How long a starting server waits for the state directory's lock: long enough to ride out a
# client's momentary liveness check (lock_is_held), short enough to refuse a real second server.
_LOCK_WAIT = 1.0


def _describe_app(app: App, directory: TenantFile, now: datetime) -> dict[str, Any]:
    def _abs(relative: str | None) -> str | None:
        return str(directory.path(relative).resolve()) if relative else None

    certificates = []
    for entry in app.certificates:
        cert = load_certificate(directory.path(entry.cert_file))
        certificates.append(
            {
                "cert_file": _abs(entry.cert_file),
                "key_file": _abs(entry.key_file),
                "pfx_file": _abs(entry.pfx_file),
                "pfx_password": entry.pfx_password,
                "thumbprint_sha1": thumbprint_sha1(cert).hex().upper(),
                "thumbprint_sha256": thumbprint_sha256(cert).hex().upper(),
            }
        )
    return {
        "name": app.name,
        "client_id": app.client_id,
        "object_id": app.object_id,
        "service_principal_id": app.service_principal_id,
        "public_client_flows": app.public_client_flows,
        "redirect_uris": list(app.redirect_uris),
        "secrets": [
            {
                "key_id": s.key_id,
                "value": s.value,
                "expires": s.expires.isoformat().replace("+00:00", "Z"),
                "expired": s.expired(now),
            }
            for s in app.secrets
        ],
        "certificates": certificates,
    }


def _describe_tenant(tenant: Tenant, base_url: str, directory: TenantFile) -> dict[str, Any]:
    authority = f"{base_url}/{tenant.id}"
    now = datetime.now(UTC)
    return {
        "id": tenant.id,
        "name": tenant.name,
        "domains": list(tenant.domains),
        "authority": authority,
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "authorize_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "devicecode_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        "apps": [_describe_app(a, directory, now) for a in tenant.apps],
        "users": [
            {
                "upn": u.upn,
                "password": u.password,
                "display_name": u.display_name,
                "object_id": u.object_id,
                "state": u.state,
                "directory_roles": list(u.directory_roles),
            }
            for u in tenant.users
        ],
        "mailboxes": [
            {
                "address": m.address,
                "owner": m.owner,
                "shared": m.shared,
                "smtp_auth_enabled": m.smtp_auth_enabled,
            }
            for m in tenant.mailboxes
        ],
    }


def describe(
    base_url: str,
    ca_file: Path,
    tenant_file: Path,
    directory: TenantFile,
    mail_ports: dict[str, int] | None = None,
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """The version-1 description of a running sandbox (see the module docstring)."""
    ports = mail_ports or {}
    security = {"imap": "tls", "pop3": "tls", "smtp": "starttls"}
    mail: dict[str, Any] = {
        name: {"host": host, "port": ports[name], "security": security[name]}
        for name in security
        if name in ports
    }
    mail.update(ews_url=f"{base_url}/EWS/Exchange.asmx", graph_url=f"{base_url}/v1.0")
    return {
        "version": 1,
        "base_url": base_url,
        "authority_host": base_url.removeprefix("https://"),
        "ca_file": str(ca_file.resolve()),
        "tenant_file": str(tenant_file.resolve()),
        "endpoints": {
            "stats": f"{base_url}/_sandbox/stats",
            "device_approve": f"{base_url}/_sandbox/device/approve",
            "devicelogin": f"{base_url}/devicelogin",
        },
        "resources": {"exchange": EXCHANGE.identifier_uris[0], "graph": GRAPH.identifier_uris[0]},
        "tenants": [_describe_tenant(t, base_url, directory) for t in directory.tenants],
        "mail": mail,
    }


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    # Clients keep connections alive (MSAL, httpx); at stop uvicorn reports cancelling them as
    # an ERROR although nothing was lost. Everything else from uvicorn still shows.
    return "graceful shutdown exceeded" not in record.getMessage()


class SandboxServer:
    """The identity platform served by uvicorn with TLS in a background thread."""

    def __init__(
        self,
        state_dir: Path,
        port: int = 0,
        tenant_file: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.host = host
        self.tenant_file = tenant_file
        self.platform: IdentityPlatform | None = None
        self.description: dict[str, Any] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.mail: SandboxMail | None = None
        self.mail_servers: MailServers | None = None
        self.directory_state: DirectoryState | None = None
        self._directory: TenantFile | None = None
        self._tenant_file_used = Path()
        self._ca_file = Path()
        self._lock: contextlib.ExitStack | None = None

    @property
    def base_url(self) -> str:
        """``https://host:port`` once started."""
        if self._socket is None:
            raise RuntimeError("the sandbox is not started")
        return f"https://{self.host}:{self.port}"

    @property
    def description_file(self) -> Path:
        """Where :attr:`description` is written."""
        return self.state_dir / DESCRIPTION_FILE

    def start(self) -> None:
        """Prepare keys and tenant, bind, serve, and return once requests are accepted.

        Raises :class:`~mailgate.errors.ConfigurationError` for bad local input, before
        anything is served; whatever was set up by then is released again.
        """
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(
                f"port {self.port} is out of range (0-65535).",
                "choose a port from 1024 to 65535 with --port, or 0 for any free one.",
            )
        self._make_state_dir()
        try:
            self._lock_state_dir()
            self._serve()
        except BaseException:
            self.stop()
            raise

    def _make_state_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ConfigurationError(
                f"the sandbox state directory {self.state_dir} cannot be created: a file is in "
                "the way.",
                "choose a directory (or a path that does not exist yet) with --state-dir.",
            ) from exc
        except OSError as exc:
            raise ConfigurationError(
                f"the sandbox state directory {self.state_dir} cannot be created "
                f"({exc.strerror or exc}).",
                "choose a directory you can write to with --state-dir.",
            ) from exc

    def _lock_state_dir(self) -> None:
        lock = contextlib.ExitStack()
        try:
            lock.enter_context(exclusive_lock(self.state_dir / LOCK_FILE, timeout=_LOCK_WAIT))
        except BlockingIOError as exc:
            raise ConfigurationError(
                f"another sandbox is already running on the state directory {self.state_dir} "
                f"(it holds {self.state_dir / LOCK_FILE}).",
                "use that sandbox (its sandbox.json says where it listens), stop it first, or "
                "give this one another --state-dir.",
            ) from exc
        self._lock = lock

    def _load_tenant(self, tenant_file: Path) -> TenantFile:
        try:
            return load_tenant_file(tenant_file)
        except OSError as exc:
            raise ConfigurationError(
                f"the tenant file {tenant_file} cannot be read ({exc.strerror or exc}).",
                "give an existing TOML file with --tenant-file, or leave it out for the demo "
                "tenant.",
            ) from exc
        except ValueError as exc:
            # TOML syntax errors and pydantic's validation errors are both ValueErrors; the
            # first line says what and where, the rest repeats pydantic's help link.
            reason = " ".join(" ".join(str(exc).splitlines()[:3]).split())
            raise ConfigurationError(
                f"the tenant file {tenant_file} is not a valid tenant: {reason}",
                "correct the file (docs/sandbox.md describes its format), or leave out "
                "--tenant-file for the demo tenant.",
            ) from exc

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            where = f"port {self.port} on {self.host}"
            if exc.errno == errno.EADDRINUSE:
                message = f"{where} is already in use."
            elif exc.errno == errno.EACCES:
                message = f"{where} needs privileges this process does not have."
            else:
                message = f"{where} cannot be used ({exc.strerror or exc})."
            raise ConfigurationError(
                message,
                "choose another port with --port (0 picks a free one), or stop what listens there.",
            ) from exc
        return sock

    def _serve(self) -> None:
        pki = ensure_pki(self.state_dir)
        tenant_file = self.tenant_file or write_demo_tenant(self.state_dir)
        directory = self._load_tenant(tenant_file)
        # Apps and Exchange settings changed through Graph or the PowerShell hook last time.
        self.directory_state = DirectoryState(self.state_dir, tenant_file)
        self.directory_state.restore(directory)
        self._tenant_file_used = tenant_file
        self._directory = directory
        # Binding here, not in uvicorn, tells us the port before the thread starts.
        sock = self._bind()
        self._socket = sock
        self.port = sock.getsockname()[1]
        signer = TokenSigner(pki.signing_key, pki.signing_cert)
        self.platform = IdentityPlatform(directory, signer, self.base_url)
        # One mail store for IMAP, POP3, SMTP, Graph and EWS.
        self.mail = SandboxMail(
            build_store(directory), directory, pki.signing_key.public_key(), self.base_url
        )
        self.mail_servers = MailServers(
            self.mail, pki.server_cert_file, pki.server_key_file, self.host
        )
        self.mail_servers.start()
        config = uvicorn.Config(
            create_app(
                self.platform,
                self.mail,
                certificate_dir=self.directory_state.certificate_dir,
                on_directory_change=self._directory_changed,
            ),
            ssl_certfile=str(pki.server_cert_file),
            ssl_keyfile=str(pki.server_key_file),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="mailgate-sandbox",
            daemon=True,
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server failed to start; see the log above")
            self._thread.join(0.01)
        self._ca_file = pki.ca_file
        self.description = self._describe()
        self._write_description()

    def _write_description(self) -> None:
        # Atomic (a reader never sees half a file) and 0600 from the start: it holds secrets.
        text = json.dumps(self.description, indent=2)
        write_private_file(self.description_file, text.encode("utf-8"))

    def _describe(self) -> dict[str, Any]:
        assert self.mail_servers is not None and self._directory is not None
        return describe(
            self.base_url,
            self._ca_file,
            self._tenant_file_used,
            self._directory,
            self.mail_servers.ports,
            self.host,
        )

    def _directory_changed(self) -> None:
        """Persist the directory and refresh ``sandbox.json`` (new apps and their secrets).

        The description dict is updated in place, so a controller holding it sees the change.
        """
        if self._directory is None or self.directory_state is None:
            return
        self.directory_state.save(self._directory)
        if self.mail_servers is None:
            return
        fresh = self._describe()
        self.description.clear()
        self.description.update(fresh)
        self._write_description()

    def stop(self) -> None:
        """Stop serving, remove ``sandbox.json`` and release the lock; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        if self.mail_servers is not None:
            self.mail_servers.stop()
            self.mail_servers = None
        self._server = self._thread = None
        if self._lock is not None:
            # Only the lock holder wrote the description: a stopped sandbox must not leave one
            # that clients would take for a live server.
            self.description_file.unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_forever(state_dir: Path, port: int = 0, tenant_file: Path | None = None) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (the ``mailgate sandbox`` command)."""
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    server = SandboxServer(state_dir, port, tenant_file)
    try:
        server.start()  # on failure it has released what it took; nothing was served
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    try:
        print(f"mailgate sandbox listening on {server.base_url}", flush=True)
        print(f"description (holds demo secrets): {server.description_file}", flush=True)
        print(f"CA certificate to trust: {server.description['ca_file']}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("mailgate sandbox stopped", flush=True)
