"""``mailgate demo``: the whole product, end to end, against the embedded sandbox.

A newcomer runs one command and sees each capability work: the sandbox identity platform starts,
credentials of every kind go into the encrypted vault, a token is acquired by every flow the
seeds use, the cache answers repeated requests, and typical setup mistakes come back as
diagnoses with their remedies. The demo uses only public APIs, so it doubles as an example.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from mailgate.demo.importing import import_tour
from mailgate.demo.mail import mail_tour
from mailgate.demo.outbox import outbox_tour
from mailgate.errors import MailgateError
from mailgate.identity import AccessToken, ConsoleInteraction, TokenProvider
from mailgate.identity.profiles import CredentialRequest, build_profile
from mailgate.secret import Secret
from mailgate.testing import SandboxClient, SandboxController
from mailgate.vault import CredentialKind, DelegatedFlow, SecretField, Vault, load_certificate

__all__ = ["SandboxInteraction", "run_demo"]


class SandboxInteraction(ConsoleInteraction):
    """A person at the sandbox's pages, played by HTTP: approves device codes, signs in.

    The auth-code flow still goes through mailgate's local redirect server: the "browser"
    signs in to the sandbox and then follows the redirect to 127.0.0.1 like a real one.
    """

    def __init__(self, sandbox: SandboxClient, user: str, out: Callable[[str], None]) -> None:
        super().__init__(open_browser=self._browse, out=out, timeout=30, show_url=False)
        self.sandbox = sandbox
        self.user = sandbox.user(user)

    def show_device_code(self, flow: Mapping[str, Any]) -> None:
        super().show_device_code(flow)
        self.sandbox.answer_device_code(str(flow["user_code"]), self.user["upn"])
        self.out(f"  (sandbox) {self.user['upn']} entered code {flow['user_code']} and approved")

    def _browse(self, url: str) -> None:
        location = self.sandbox.sign_in(url, self.user["upn"], self.user["password"])
        self.out(
            f"  (sandbox) browser signed in {self.user['upn']}, redirected to "
            f"{location.split('?')[0]}"
        )
        httpx.get(location, timeout=10)


@dataclass
class _Step:
    console: Console
    number: int = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        self.console.rule(f"[bold]{self.number}. {title}")


def _add(
    vault: Vault,
    kind: CredentialKind,
    name: str,
    app: dict[str, Any],
    tenant: dict[str, Any],
    secrets: dict[SecretField, Secret],
    **fields: Any,
) -> None:
    request = CredentialRequest(
        name=name,
        kind=kind,
        client_id=app["client_id"],
        cloud="sandbox",
        token_uri=tenant["token_endpoint"],
        **fields,
    )
    certificate = fields.pop("certificate", None)
    profile, _ = build_profile(request, certificate)
    vault.add(profile, secrets, replace=True)


def _store_credentials(vault: Vault, sandbox: SandboxClient) -> list[tuple[str, str]]:
    tenant = sandbox.tenant("contoso")
    daemon = sandbox.app("mailgate-daemon")
    public = sandbox.app("mailgate-public")
    alice = sandbox.user("alice")
    valid = next(s for s in daemon["secrets"] if not s["expired"])
    expired = next(s for s in daemon["secrets"] if s["expired"])
    cert = daemon["certificates"][0]
    pfx = load_certificate(Path(cert["pfx_file"]).read_bytes(), Secret(cert["pfx_password"]))
    fields_for_alice = {"username": alice["upn"]}
    plan: list[tuple[str, str, Callable[[], None]]] = [
        (
            "daemon-secret",
            "client credentials + secret",
            lambda: _add(
                vault,
                CredentialKind.CLIENT_SECRET,
                "daemon-secret",
                daemon,
                tenant,
                {SecretField.CLIENT_SECRET: Secret(valid["value"])},
                secret_expires=valid["expires"],
            ),
        ),
        ("daemon-cert", "client credentials + certificate (PFX)", lambda: _add_cert()),
        (
            "alice-password",
            "ROPC (user name + password)",
            lambda: _add(
                vault,
                CredentialKind.PASSWORD,
                "alice-password",
                public,
                tenant,
                {SecretField.PASSWORD: Secret(alice["password"])},
                **fields_for_alice,
            ),
        ),
        (
            "alice-device",
            "device code (delegated)",
            lambda: _add(
                vault,
                CredentialKind.DELEGATED,
                "alice-device",
                public,
                tenant,
                {},
                flow=DelegatedFlow.DEVICE_CODE,
                **fields_for_alice,
            ),
        ),
        (
            "alice-browser",
            "authorization code + PKCE (delegated)",
            lambda: _add(
                vault,
                CredentialKind.DELEGATED,
                "alice-browser",
                public,
                tenant,
                {},
                flow=DelegatedFlow.AUTH_CODE,
                **fields_for_alice,
            ),
        ),
        (
            "expired-secret",
            "client secret that expired",
            lambda: _add(
                vault,
                CredentialKind.CLIENT_SECRET,
                "expired-secret",
                daemon,
                tenant,
                {SecretField.CLIENT_SECRET: Secret(expired["value"])},
                secret_expires=expired["expires"],
            ),
        ),
        (
            "pasted-secret-id",
            "secret ID pasted instead of its value",
            lambda: _add(
                vault,
                CredentialKind.CLIENT_SECRET,
                "pasted-secret-id",
                daemon,
                tenant,
                {SecretField.CLIENT_SECRET: Secret(valid["key_id"])},
            ),
        ),
        (
            "bob-mfa",
            "ROPC for a user with MFA",
            lambda: _add(
                vault,
                CredentialKind.PASSWORD,
                "bob-mfa",
                public,
                tenant,
                {SecretField.PASSWORD: Secret(sandbox.user("bob")["password"])},
                username=sandbox.user("bob")["upn"],
            ),
        ),
        (
            "ropc-no-public-flows",
            "ROPC on an app without public client flows",
            lambda: _add(
                vault,
                CredentialKind.PASSWORD,
                "ropc-no-public-flows",
                daemon,
                tenant,
                {SecretField.PASSWORD: Secret(alice["password"])},
                **fields_for_alice,
            ),
        ),
    ]

    def _add_cert() -> None:
        request = CredentialRequest(
            name="daemon-cert",
            kind=CredentialKind.CERTIFICATE,
            client_id=daemon["client_id"],
            cloud="sandbox",
            token_uri=tenant["token_endpoint"],
        )
        profile, _ = build_profile(request, pfx.info)
        vault.add(profile, {SecretField.PRIVATE_KEY: pfx.private_key_pem}, replace=True)

    for _name, _what, action in plan:
        action()
    return [(name, what) for name, what, _ in plan]


def _grants(token: AccessToken) -> str:
    return " ".join(token.roles) or " ".join(token.delegated_scopes) or "(none)"


def run_demo(workdir: Path | None = None, console: Console | None = None) -> int:
    """Run the demo; returns the number of failed steps (0 when all went as expected)."""
    # soft_wrap: read through a pipe or a log, rich would break lines at 80 columns in the middle
    # of paths and commands; a terminal wraps long lines itself.
    out = console or Console(highlight=False, soft_wrap=True, emoji=False)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mailgate-demo-"))
    step = _Step(out)
    failures = 0
    try:
        step("Sandbox identity platform")
        with SandboxController(root / "sandbox") as sandbox:
            out.print(f"Serving Entra ID v2.0 endpoints at {sandbox.base_url}")
            out.print(
                f"Description (endpoints, CA, demo apps and users): "
                f"{root / 'sandbox' / 'sandbox.json'}"
            )
            tenant = sandbox.tenant("contoso")
            out.print(
                f"Demo tenant {tenant['name']} ({tenant['id']}), "
                f"{len(tenant['apps'])} apps, {len(tenant['users'])} users"
            )

            step("Credential vault")
            vault = Vault(root / "home")
            names = _store_credentials(vault, sandbox)
            for name, what in names:
                out.print(f"  stored [bold]{name}[/]: {what}")
            _show_vault(out, vault, sandbox)

            provider = TokenProvider(
                vault,
                interaction=SandboxInteraction(sandbox, "alice", lambda t: out.print(t)),
                sandbox_file=root / "sandbox" / "sandbox.json",
            )
            step("A token by every flow")
            sandbox.reset_stats()
            good = dict(names[:5])
            for name, what in good.items():
                try:
                    token = provider.acquire(name)
                except MailgateError as exc:
                    failures += 1
                    out.print(f"[red]{name} failed: {escape(str(exc))}")
                    continue
                who = token.claims.get("upn") or f"app {token.claims.get('appid')}"
                out.print(
                    f"[green]ok[/] [bold]{name}[/] ({what}): token for {who}, "
                    f"audience {token.audience}, grants {_grants(token)}"
                )

            step("Token cache: the same requests again")
            before = _token_requests(sandbox)
            again = [provider.acquire(name) for name in good]
            after = _token_requests(sandbox)
            cached = sum(t.from_cache for t in again)
            out.print(
                f"{cached} of {len(again)} tokens came from the encrypted cache; "
                f"token requests at the sandbox: {before} before, {after} after."
            )
            if after != before:
                failures += 1
            refreshed = provider.acquire("alice-device", force_refresh=True)
            stats = sandbox.stats()["token"]
            out.print(
                f"Forced refresh of alice-device used the stored refresh token "
                f"(refresh_token grants so far: {stats.get('refresh_token', 0)}); new token "
                f"expires {refreshed.expires_on:%H:%M:%S} UTC."
            )

            step("Setup mistakes, diagnosed")
            for name, _what in names[5:]:
                try:
                    provider.acquire(name)
                except MailgateError as exc:
                    out.print(f"[bold]{name}[/]: [red]{escape(exc.message)}[/]")
                    out.print(f"    fix: {exc.remedy}", markup=False)
                else:
                    failures += 1
                    out.print(f"[red]{name}: expected an error, got a token")

            failures += mail_tour(out, step, root, provider, sandbox)
            failures += import_tour(out, step, root, provider)
            failures += outbox_tour(out, step, root, provider, sandbox)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    out.rule()
    if failures:
        out.print(f"[bold red]Demo finished with {failures} unexpected results.")
    else:
        out.print("[bold green]Demo finished: every step worked as expected.")
    return failures


def _token_requests(sandbox: SandboxClient) -> int:
    return sum(int(n) for n in sandbox.stats().get("token", {}).values())


def _show_vault(out: Console, vault: Vault, sandbox: SandboxClient) -> None:
    mode = stat.S_IMODE(vault.path.stat().st_mode)
    clear = [s["value"] for s in sandbox.app("mailgate-daemon")["secrets"]] + [
        sandbox.user("alice")["password"]
    ]
    files = [p for p in vault.directory.rglob("*") if p.is_file()]
    leaked = [p.name for p in files for value in clear if value.encode() in p.read_bytes()]
    out.print(
        f"Vault {vault.path} mode {mode:o}, master key {vault.key!r}; "
        f"secrets in clear in {len(files)} files: {len(leaked)}"
    )
    expiring = [(p.name, p.expiry_status()) for p in vault.list() if p.expires_at()]
    for name, status in expiring:
        out.print(f"  secret expiry of {name}: {status}")
    _ = datetime  # expiry statuses are computed against the current time
