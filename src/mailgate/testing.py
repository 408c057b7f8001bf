"""Test helpers: run the sandbox identity platform in a thread for your own tests.

Like aiosmtpd's ``Controller``::

    from mailgate.testing import SandboxController

    with SandboxController() as sandbox:
        app = sandbox.app("mailgate-daemon")
        msal.ConfidentialClientApplication(
            app["client_id"], client_credential=app["secrets"][0]["value"],
            authority=sandbox.authority(), instance_discovery=False, verify=sandbox.ca_file)

The sandbox is imported lazily, so importing this module costs nothing in production.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx

from mailgate.errors import ConfigurationError, TokenRequestError
from mailgate.fileio import lock_is_held
from mailgate.identity._msal import SandboxHttpSession

# The server's name for its lock (mailgate.sandbox.server.LOCK_FILE); the sandbox is not
# imported at module level, so that importing this module stays cheap.
_LOCK_FILE = "sandbox.lock"

if TYPE_CHECKING:
    from mailgate.sandbox.exchange.store import MailStore
    from mailgate.sandbox.server import SandboxServer

__all__ = ["SandboxClient", "SandboxController", "SandboxSession", "SignInError"]


class SignInError(AssertionError):
    """The emulated browser could not complete a sign-in (the page did not redirect)."""


class _FormReader(HTMLParser):
    """Collects the first form's action and its input fields, as a browser would submit it."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = values.get("action", ""), True
        elif (
            tag == "input"
            and self._in_form
            and values.get("type") != "checkbox"
            and "name" in values
        ):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


# MSAL's http_client for the sandbox lives with the production code that uses it.
SandboxSession = SandboxHttpSession


class SandboxClient:
    """Looks up and drives a running sandbox from its description (``sandbox.json``).

    :class:`SandboxController` is one of these that also runs the server; the CLI uses this
    class directly to talk to a sandbox started by ``mailgate sandbox``.
    """

    def __init__(self, description: dict[str, Any]) -> None:
        self._description = description

    @classmethod
    def from_file(cls, path: Path) -> SandboxClient:
        """Read the description a running sandbox wrote; ConfigurationError if none is running.

        A sandbox removes its description when it stops; one left by a killed sandbox is told
        apart by the state directory's lock, which only a running sandbox holds.
        """
        path = Path(path)
        start = "start the sandbox with `mailgate sandbox` first, or set MAILGATE_SANDBOX."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"no sandbox is running: there is no sandbox description at {path}.", start
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"the sandbox description {path} cannot be read ({exc}).", start
            ) from exc
        lock = path.parent / _LOCK_FILE
        if lock.exists() and not lock_is_held(lock):
            raise ConfigurationError(
                f"no sandbox is running: {path} was left by a sandbox that was killed.", start
            )
        return cls(data)

    # -- what the sandbox looks like ---------------------------------------------------------

    @property
    def description(self) -> dict[str, Any]:
        """The contents of ``sandbox.json`` (see :mod:`mailgate.sandbox.server`)."""
        return self._description

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return str(self.description["base_url"])

    @property
    def authority_host(self) -> str:
        """``127.0.0.1:PORT``, the form azure-identity's ``authority`` takes."""
        return str(self.description["authority_host"])

    @property
    def ca_file(self) -> str:
        """The CA certificate to trust (``verify=`` for MSAL and httpx)."""
        return str(self.description["ca_file"])

    def tenant(self, name: str = "contoso") -> dict[str, Any]:
        """A tenant by id, domain, name, or first domain label (``"contoso"``)."""
        wanted = name.lower()
        for tenant in self.description["tenants"]:
            labels = {d.lower() for d in tenant["domains"]} | {
                d.split(".")[0].lower() for d in tenant["domains"]
            }
            if wanted in labels or wanted in (tenant["id"], tenant["name"].lower()):
                return dict(tenant)
        raise KeyError(f"no sandbox tenant {name!r}")

    def authority(self, tenant: str = "contoso") -> str:
        """``https://127.0.0.1:PORT/<tenant id>`` for MSAL."""
        return str(self.tenant(tenant)["authority"])

    def _tenants(self, tenant: str | None) -> list[dict[str, Any]]:
        if tenant is not None:
            return [self.tenant(tenant)]
        return list(self.description["tenants"])

    def app(self, name: str, tenant: str | None = None) -> dict[str, Any]:
        """An app registration by name or client id (in any tenant unless one is named)."""
        for candidate in self._tenants(tenant):
            for app in candidate["apps"]:
                if name in (app["name"], app["client_id"]):
                    return dict(app)
        raise KeyError(f"no sandbox app {name!r}")

    def user(self, name: str, tenant: str | None = None) -> dict[str, Any]:
        """A user by UPN or by the part before the ``@`` (``"alice"``)."""
        wanted = name.lower()
        for candidate in self._tenants(tenant):
            for user in candidate["users"]:
                if wanted in (user["upn"].lower(), user["upn"].split("@")[0].lower()):
                    return dict(user)
        raise KeyError(f"no sandbox user {name!r}")

    # -- driving it --------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the sandbox CA (for httpx's ``verify=``)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def requests_session(self) -> SandboxSession:
        """A session for MSAL's ``http_client=`` (see :class:`SandboxSession`)."""
        return SandboxSession(self.ca_file, self.base_url)

    def http(self) -> httpx.Client:
        """An httpx client that trusts the sandbox CA."""
        return httpx.Client(verify=self.ssl_context(), base_url=self.base_url, timeout=10)

    def stats(self) -> dict[str, Any]:
        """Request counters: ``{"token": {grant: n}, "openid_configuration": n, ...}``."""
        with self.http() as client:
            result: dict[str, Any] = client.get("/_sandbox/stats").raise_for_status().json()
        return result

    def lose_answers(self, protocol: str, count: int = 1) -> None:
        """Make the sandbox take the next ``count`` submissions over ``protocol`` ("smtp" or
        "graph") and lose its answer to them (SMTP hangs up before its 250, Graph says 504)."""
        with self.http() as client:
            client.post(
                "/_sandbox/lost-answers", json={"protocol": protocol, "count": count}
            ).raise_for_status()

    def fail_token_requests(
        self,
        count: int = 1,
        status: int = 503,
        body: str = "json",
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``count`` token requests answer HTTP ``status`` (0 stops it).

        ``body`` is ``"json"`` (Entra's AADSTS90033 transient error) or ``"html"`` (a bare
        error page); ``retry_after`` adds that header in seconds.
        """
        payload = {"status": status, "count": count, "body": body, "retry_after": retry_after}
        with self.http() as client:
            client.post("/_sandbox/faults/token", json=payload).raise_for_status()

    def reset_stats(self) -> None:
        """Zero the request counters."""
        with self.http() as client:
            client.post("/_sandbox/stats/reset").raise_for_status()

    def approve_device_code(
        self, user_code: str, upn: str, password: str, consent: bool = False
    ) -> dict[str, Any]:
        """Approve a device code as the user; returns the JSON (an AADSTS error body if refused)."""
        payload = {
            "user_code": user_code,
            "username": upn,
            "password": password,
            "consent": consent,
        }
        with self.http() as client:
            result: dict[str, Any] = client.post("/_sandbox/device/approve", json=payload).json()
        return result

    def answer_device_code(self, user_code: str, user: str, approve: bool = True) -> None:
        """Approve (with consent) or decline a device code as a demo user, for the CLI.

        Raises :class:`~mailgate.errors.TokenRequestError` with the AADSTS code if refused.
        """
        if approve:
            try:
                known = self.user(user)
            except KeyError as exc:
                raise ConfigurationError(
                    f"The sandbox has no user {user!r}.", "use a UPN from sandbox.json."
                ) from exc
            answer = self.approve_device_code(
                user_code, known["upn"], known["password"], consent=True
            )
        else:
            answer = self.decline_device_code(user_code)
        if "error" in answer:
            codes = answer.get("error_codes") or [0]
            raise TokenRequestError(
                answer.get("error_description", "").split("\r\n")[0],
                "check the code and the user's state in sandbox.json.",
                code=int(codes[0]),
                error=str(answer["error"]),
                description=str(answer.get("error_description", "")),
                trace_id=str(answer.get("trace_id", "")),
                correlation_id=str(answer.get("correlation_id", "")),
            )

    def decline_device_code(self, user_code: str) -> dict[str, Any]:
        """Decline a device code as the user would."""
        with self.http() as client:
            result: dict[str, Any] = client.post(
                "/_sandbox/device/decline", json={"user_code": user_code}
            ).json()
        return result

    def revoke_sessions(self, upn: str) -> None:
        """Revoke the user's refresh tokens (they then fail with AADSTS50173)."""
        with self.http() as client:
            client.post(f"/_sandbox/users/{upn}/revoke-sessions").raise_for_status()

    def set_user_state(self, upn: str, **flags: bool) -> str:
        """Flip account flags (``locked=True``...); returns the resulting state name."""
        with self.http() as client:
            response = client.post(f"/_sandbox/users/{upn}/state", json=flags).raise_for_status()
        return str(response.json()["state"])

    def exchange_powershell(self, script: str, tenant: str = "contoso") -> list[dict[str, Any]]:
        """Run Exchange Online PowerShell lines (as ``setup plan``/``apply`` print them).

        Graph cannot register service principals in Exchange or give mailbox rights; the
        sandbox emulates those cmdlets (see :mod:`mailgate.sandbox.exchange.powershell`). Returns
        one result per line; raises :class:`ConfigurationError` naming the failing line.
        """
        payload = {"tenant": self.tenant(tenant)["id"], "script": script}
        with self.http() as client:
            response = client.post("/_sandbox/exchange/powershell", json=payload)
        data: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise ConfigurationError(
                f"the sandbox refused line {data.get('line', '?')}: {data.get('error')}",
                "use the cmdlets and parameters listed in mailgate.sandbox.exchange.powershell.",
            )
        return list(data["results"])

    def delay_secret_propagation(self, token_requests: int) -> None:
        """Refuse secrets added through Graph from now on for this many token requests each.

        Emulates Entra's replication delay (AADSTS7000215 for a fresh secret); 0 turns it off.
        """
        with self.http() as client:
            client.post(
                "/_sandbox/directory/propagation", json={"delay_requests": token_requests}
            ).raise_for_status()

    def sign_in(self, authorize_url: str, upn: str, password: str, consent: bool = False) -> str:
        """Act as the browser in an auth-code flow; returns the redirect ``Location``.

        GETs the sign-in page, fills in the credentials and posts the form. The returned URL
        carries ``code`` and ``state`` or ``error`` and ``error_description``.
        """
        with httpx.Client(verify=self.ssl_context(), timeout=10, follow_redirects=False) as client:
            page = client.get(authorize_url)
            if page.status_code != 200:
                raise SignInError(f"sign-in page answered {page.status_code}: {page.text}")
            form = _FormReader()
            form.feed(page.text)
            if form.action is None:
                raise SignInError("the sign-in page has no form")
            fields = {**form.fields, "username": upn, "password": password}
            if consent:
                fields["consent"] = "yes"
            answer = client.post(urljoin(str(page.url), form.action), data=fields)
            location = answer.headers.get("location")
            if answer.status_code not in (302, 303) or not location:
                raise SignInError(f"sign-in answered {answer.status_code}: {answer.text}")
            return str(location)


class SandboxController(SandboxClient):
    """Starts a :class:`~mailgate.sandbox.server.SandboxServer` for the ``with`` block.

    ``state_dir`` defaults to a temporary directory removed afterwards; pass one to keep the
    generated keys and demo secrets between runs.
    """

    def __init__(
        self, state_dir: Path | None = None, tenant_file: Path | None = None, port: int = 0
    ) -> None:
        super().__init__({})
        self._temporary = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="mailgate-sandbox-"))
        self.tenant_file = tenant_file
        self.port = port
        self.server: SandboxServer | None = None

    @property
    def mailstore(self) -> MailStore:
        """The running sandbox's mail store (shared by IMAP, POP3, SMTP, Graph and EWS)."""
        if self.server is None or self.server.mail is None:
            raise RuntimeError("the sandbox is not started")
        return self.server.mail.store

    def deliver(self, raw: bytes, *recipients: str) -> list[str]:
        """Deliver RFC 5322 bytes into the Inbox of sandbox mailboxes; returns who got it."""
        return self.mailstore.deliver(raw, recipients)

    def start(self) -> None:
        """Start the server; returns when it accepts requests."""
        from mailgate.sandbox.server import SandboxServer

        self.server = SandboxServer(self.state_dir, self.port, self.tenant_file)
        self.server.start()
        self._description = self.server.description

    def stop(self) -> None:
        """Stop the server and remove a temporary state directory."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._temporary:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SandboxController:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
