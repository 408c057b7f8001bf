"""``mailgate creds``: add, list, show, remove credentials; secrets and their rotation and
expiry alerts; sign-in; master key."""

from __future__ import annotations

import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate.cli._context import open_provider, open_vault, warn_expiring
from mailgate.cli._output import console, err_console, escape, print_json, read_secret, warn
from mailgate.errors import InvalidInputError
from mailgate.fileio import write_private_file
from mailgate.identity import ConsoleInteraction, parse_guid
from mailgate.identity.clouds import GRAPH_CLI_CLIENT_ID
from mailgate.identity.profiles import CredentialRequest, build_profile, parse_expiry
from mailgate.secret import Secret
from mailgate.vault import (
    ENV_MASTER_KEY,
    CredentialKind,
    CredentialProfile,
    DelegatedFlow,
    SecretField,
    generate_key_text,
    load_master_key_file,
)

__all__ = [
    "SecretEnv",
    "SecretStdin",
    "add",
    "app",
    "expiring",
    "list_",
    "login",
    "new_key",
    "remove_cache",
    "rm",
    "rotate_key",
    "rotate_secret_command",
    "set_secret",
    "show",
]

# Start-up: alerts (httpx) and the admin modules are imported inside the commands that use
# them, so that other commands do not pay for them.

app = typer.Typer(help="Credentials: tenant, client ID, secret or certificate, user/password.")

SecretStdin = Annotated[
    bool, typer.Option("--secret-stdin", help="Read the secret (or password) from stdin.")
]
SecretEnv = Annotated[
    str | None,
    typer.Option("--secret-env", metavar="VAR", help="Read the secret from this env variable."),
]


def remove_cache(directory: Path, name: str) -> None:
    from mailgate.identity.cache import remove_cache as remove

    remove(directory, name)


def _cache_dir(data_dir: Path) -> Path:
    # Same place TokenProvider keeps them (identity/tokens.py).
    return data_dir / "token-cache"


def _public_view(profile: CredentialProfile) -> dict[str, Any]:
    data = profile.model_dump(mode="json")
    if profile.certificate is not None:
        data["certificate"].pop("certificate_pem", None)
    data["expiry_status"] = profile.expiry_status()
    return data


def _read_certificate(path: Path, password_env: str | None, password_stdin: bool) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            "certificate file", "a readable PEM or PFX file", str(path)
        ) from exc
    password = read_secret(
        "certificate password", from_stdin=password_stdin, env_var=password_env, required=False
    )
    from mailgate.vault import load_certificate

    return load_certificate(data, password)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for this credential, e.g. 'approvals'.")],
    kind: Annotated[CredentialKind, typer.Option(help="How tokens are obtained.")],
    client_id: Annotated[str, typer.Option("--client-id", help="Application (client) ID, a GUID.")],
    tenant: Annotated[
        str | None, typer.Option(help="Directory (tenant) ID or a verified domain.")
    ] = None,
    token_uri: Annotated[
        str | None,
        typer.Option(
            "--token-uri",
            help="Access token URI, https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.",
        ),
    ] = None,
    authorize_endpoint: Annotated[
        str | None, typer.Option("--authorize-endpoint", help="Authorize endpoint URI.")
    ] = None,
    cloud: Annotated[
        str | None, typer.Option(help="global, usgov, usgov-dod, china or sandbox.")
    ] = None,
    scope: Annotated[str | None, typer.Option(help="Scope string (default per kind).")] = None,
    username: Annotated[str | None, typer.Option(help="User (UPN) for password/delegated.")] = None,
    flow: Annotated[
        DelegatedFlow | None, typer.Option(help="Sign-in flow of a delegated credential.")
    ] = None,
    redirect_uri: Annotated[
        str | None, typer.Option("--redirect-uri", help="Redirect URI for auth-code.")
    ] = None,
    secret_stdin: SecretStdin = False,
    secret_env: SecretEnv = None,
    client_secret_env: Annotated[
        str | None,
        typer.Option(
            "--client-secret-env",
            metavar="VAR",
            help="Client secret of a confidential app for password/delegated credentials.",
        ),
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="Certificate: PEM (key + cert) or PFX.")] = None,
    cert_password_env: Annotated[
        str | None, typer.Option("--cert-password-env", metavar="VAR")
    ] = None,
    cert_password_stdin: Annotated[bool, typer.Option("--cert-password-stdin")] = False,
    secret_expires: Annotated[
        str | None,
        typer.Option("--secret-expires", help="When the secret expires: YYYY-MM-DD or 180d."),
    ] = None,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    replace: Annotated[bool, typer.Option(help="Overwrite a credential of the same name.")] = False,
) -> None:
    """Store a credential; secrets come from a prompt, stdin or an environment variable."""
    certificate = None
    if kind is CredentialKind.CERTIFICATE:
        if cert is None:
            raise InvalidInputError("certificate file", "--cert PATH to a PEM or PFX file")
        certificate = _read_certificate(cert, cert_password_env, cert_password_stdin)
    request = CredentialRequest(
        name=name,
        kind=kind,
        client_id=client_id,
        tenant=tenant,
        token_uri=token_uri,
        authorize_endpoint=authorize_endpoint,
        cloud=cloud,
        scope=scope,
        username=username,
        flow=flow,
        redirect_uri=redirect_uri,
        secret_expires=secret_expires,
        display_name=display_name,
    )
    profile, warnings = build_profile(request, certificate.info if certificate else None)
    secrets: dict[SecretField, Secret] = {}
    if kind is CredentialKind.CLIENT_SECRET:
        value = read_secret(
            "client secret", from_stdin=secret_stdin, env_var=secret_env, required=True
        )
        assert value is not None
        secrets[SecretField.CLIENT_SECRET] = value
    elif kind is CredentialKind.PASSWORD:
        value = read_secret("password", from_stdin=secret_stdin, env_var=secret_env, required=True)
        assert value is not None
        secrets[SecretField.PASSWORD] = value
    elif certificate is not None:
        secrets[SecretField.PRIVATE_KEY] = certificate.private_key_pem
    if client_secret_env and not kind.app_only:
        extra = read_secret(
            "client secret", from_stdin=False, env_var=client_secret_env, required=True
        )
        assert extra is not None
        secrets[SecretField.CLIENT_SECRET] = extra
    for text in warnings:
        warn(text)
    vault = open_vault()
    vault.add(profile, secrets, replace=replace)
    if replace:
        # Tokens of the replaced credential belong to its old app or user, not the new one.
        remove_cache(_cache_dir(vault.directory), profile.name)
    console.print(
        f"Stored credential [bold]{escape(profile.name)}[/] ({profile.kind.value}, "
        f"tenant {escape(profile.tenant)}, cloud {escape(profile.cloud)})."
    )
    warn_expiring(profile)
    if kind is CredentialKind.DELEGATED:
        console.print(f"Sign in once with `mailgate creds login {escape(profile.name)}`.")


@app.command("list")
def list_(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List credentials; flags secrets that expire within 14 days or have expired."""
    profiles = open_vault().list()
    if json_output:
        print_json([_public_view(p) for p in profiles])
        return
    from rich.table import Table

    table = Table("name", "kind", "tenant", "client ID", "user", "cloud", "secret expires")
    for p in profiles:
        expires = p.expires_at()
        status = p.expiry_status()
        shown = f"{expires:%Y-%m-%d}" if expires else "-"
        if status == "expired":
            shown = f"[bold red]{shown} EXPIRED[/]"
        elif status.startswith("expires"):
            shown = f"[yellow]{shown} ({status})[/]"
        table.add_row(
            *(escape(v) for v in (p.name, p.kind.value, p.tenant, p.client_id)),
            escape(p.username or "-"),
            escape(p.cloud),
            shown,
        )
    console.print(table)


@app.command("expiring")
def expiring(
    within: Annotated[
        str, typer.Option(help="Window: a number of days such as 30d (default) or 90d.")
    ] = "30d",
    json_output: Annotated[bool, typer.Option("--json")] = False,
    webhook: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Also POST one JSON alert there when anything expires (signed with "
            "MAILGATE_ALERT_SECRET if set).",
        ),
    ] = None,
) -> None:
    """Credentials whose secret or certificate expires within the window (or has expired).

    Exits 1 when there is any, so a scheduler or monitoring check can alert on it.
    """
    from mailgate import alerts

    days = _window_days(within)
    url = alerts.parse_webhook_url(webhook) if webhook is not None else None
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for profile in open_vault().list():
        expires = profile.expires_at()
        if expires is None or expires - now > timedelta(days=days):
            continue
        remaining = (expires - now).days
        rows.append(
            {
                "name": profile.name,
                "kind": profile.kind.value,
                "expires": expires.isoformat(timespec="seconds"),
                "days_left": remaining,
                "expired": expires <= now,
            }
        )
    if json_output:
        print_json(rows)
    elif not rows:
        console.print(f"No secret or certificate expires within {days} days.", markup=False)
    else:
        for row in rows:
            state = "EXPIRED" if row["expired"] else f"expires in {row['days_left']} days"
            console.print(
                f"{row['name']} ({row['kind']}): {state} ({row['expires'][:10]}); renew it and "
                f"run `mailgate creds set-secret {row['name']}`",
                markup=False,
            )
    if rows and url is not None:
        sent = alerts.post_alert(
            url,
            alerts.expiry_alert(rows, days, now),
            secret=os.environ.get(alerts.ENV_SECRET) or None,
        )
        # The listing above is the primary output; a failed alert is a warning, not a crash.
        if not sent.delivered:
            warn(f"the alert was not delivered to the webhook: {sent.detail}.")
    if rows:
        raise typer.Exit(1)


def _window_days(text: str) -> int:
    value = text.strip().lower().removesuffix("days").removesuffix("day").removesuffix("d")
    if not value.isdigit() or not 0 < int(value) <= 3650:
        raise InvalidInputError("--within", "a number of days such as 30d (1-3650)", text)
    return int(value)


@app.command("show")
def show(name: str, json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one credential (never its secrets)."""
    vault = open_vault()
    profile = vault.get(name)
    view = _public_view(profile)
    view["stored_secrets"] = [str(f) for f in SecretField if vault.secret(name, f) is not None]
    if json_output:
        print_json(view)
        return
    for key, value in view.items():
        if value not in (None, "", [], ()):
            console.print(f"[bold]{escape(key)}[/]: {escape(str(value))}", markup=True)
    warn_expiring(profile)


@app.command("rm")
def rm(name: str) -> None:
    """Remove a credential and its cached tokens."""
    # No token provider: it would load (or create) the master key, which removing never needs.
    vault = open_vault()
    vault.remove(name)
    remove_cache(_cache_dir(vault.directory), name)
    console.print(f"Removed credential {escape(name)}.")


@app.command("set-secret")
def set_secret(
    name: str,
    secret_stdin: SecretStdin = False,
    secret_env: SecretEnv = None,
    expires: Annotated[
        str | None, typer.Option(help="When the new secret expires: YYYY-MM-DD or 180d.")
    ] = None,
) -> None:
    """Replace the client secret (or the password of a password credential)."""
    provider = open_provider(interactive=False)
    profile = provider.vault.get(name)
    if profile.kind is CredentialKind.CERTIFICATE:
        raise InvalidInputError("credential kind", "a secret or password credential", "certificate")
    field = (
        SecretField.PASSWORD
        if profile.kind is CredentialKind.PASSWORD
        else (SecretField.CLIENT_SECRET)
    )
    what = "password" if field is SecretField.PASSWORD else "client secret"
    value = read_secret(what, from_stdin=secret_stdin, env_var=secret_env, required=True)
    assert value is not None
    updated = provider.vault.set_secret(
        name, field, value, parse_expiry(expires) if expires else None
    )
    provider.forget(name)
    console.print(f"Stored a new {what} for {escape(name)}.")
    warn_expiring(updated)


@app.command("login")
def login(
    name: str, scope: Annotated[str | None, typer.Option(help="Scopes to sign in for.")] = None
) -> None:
    """Sign in a delegated credential (device code or browser); its refresh token is kept."""
    provider = open_provider(interactive=True)
    token = provider.sign_in(name, scope)
    console.print(
        f"Signed in as {escape(str(token.claims.get('upn', '?')))}; "
        "the refresh token is stored encrypted."
    )


@app.command("new-key")
def new_key(
    out: Annotated[Path, typer.Option(help="File to write the new master key to (mode 0600).")],
) -> None:
    """Generate a master key into a file (for MAILGATE_MASTER_KEY or rotate-key)."""
    if out.exists():
        raise InvalidInputError("--out", "a path that does not exist yet", str(out))
    try:
        write_private_file(out, (generate_key_text() + "\n").encode("ascii"))
    except OSError as exc:
        raise InvalidInputError("--out", "a file path in a writable directory", str(out)) from exc
    console.print(f"Wrote a new master key to {escape(str(out))} (mode 0600).")


@app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option("--new-key-file", help="Use this key (else one is generated)."),
    ] = None,
) -> None:
    """Re-encrypt every secret and token cache under a new master key."""
    key = load_master_key_file(new_key_file) if new_key_file else None
    provider = open_provider(interactive=False)
    count = provider.vault.rotate_key(key, provider.caches.reencrypt)
    console.print(f"Re-encrypted {count} secrets and caches under key {provider.vault.key.key_id}.")
    if os.environ.get(ENV_MASTER_KEY) and new_key_file is not None:
        warn(
            f"the master key comes from {ENV_MASTER_KEY}, so mailgate did not store the new "
            f"key: set {ENV_MASTER_KEY} to the contents of {new_key_file} now; until then "
            "mailgate cannot open the vault."
        )


@app.command("rotate-secret")
def rotate_secret_command(
    name: Annotated[str, typer.Argument(help="A client-secret credential.")],
    days: Annotated[int, typer.Option(help="Lifetime of the new secret in days.")] = 180,
    admin_client_id: Annotated[
        str,
        typer.Option(
            "--admin-client-id", help="Public client the admin signs in with (device code)."
        ),
    ] = GRAPH_CLI_CLIENT_ID,
    wait: Annotated[
        int, typer.Option(help="Seconds to wait for the new secret to replicate before giving up.")
    ] = 60,
) -> None:
    """Add a new client secret through Graph, prove it, store it, then remove the old one.

    An admin (or an owner of the app) signs in with device code. The old secret is never
    removed unless the new one worked; a new one that fails is removed again.
    """
    from mailgate.admin.graph_client import GraphClient, graph_base_url
    from mailgate.admin.rotate import rotate_secret

    if not 1 <= days <= 730:
        raise InvalidInputError("--days", "a number of days from 1 to 730", str(days))
    if not 0 <= wait <= 600:
        raise InvalidInputError("--wait", "0 to 600 seconds", str(wait))
    parse_guid("--admin-client-id", admin_client_id)
    provider = open_provider(interactive=True)
    profile = provider.vault.get(name)
    if profile.kind is not CredentialKind.CLIENT_SECRET:
        raise InvalidInputError("credential kind", "a client-secret credential", profile.kind.value)
    cloud = provider.cloud(profile)
    admin = CredentialProfile(
        name="rotate-admin",
        kind=CredentialKind.DELEGATED,
        cloud=profile.cloud,
        tenant=profile.tenant,
        client_id=admin_client_id,
        scopes=(f"{cloud.graph_resource}/Application.ReadWrite.All",),
        flow=DelegatedFlow.DEVICE_CODE,
    )
    err_console.print("Sign in as an administrator or owner of the app:", markup=False)
    token = provider.acquire_unsaved(admin, {}, interaction=ConsoleInteraction())
    err_console.print(f"Signed in as {token.claims.get('upn', '?')}.", markup=False)

    def prove(secret: Secret) -> object:
        # A real token request with the new secret and nothing cached.
        return provider.acquire_unsaved(profile, {SecretField.CLIENT_SECRET: secret})

    def store(secret: Secret, key_id: str, expires: datetime, app_object_id: str) -> object:
        updated = provider.vault.set_secret(
            name,
            SecretField.CLIENT_SECRET,
            secret,
            expires,
            secret_key_id=key_id,
            app_object_id=app_object_id,
        )
        provider.forget(name)
        return updated

    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=cloud.ca_file) if cloud.ca_file else True
    )
    with GraphClient(graph_base_url(cloud), token.value, verify=verify) as graph:
        result = rotate_secret(
            graph,
            profile,
            days=days,
            now=datetime.now(UTC).replace(microsecond=0),
            prove=prove,
            store=store,
            wait_seconds=wait,
        )
    console.print(
        f"New secret {result.new_key_id} for {name} works and is stored; it expires "
        f"{result.expires}.",
        markup=False,
    )
    if result.old_key_id is None:
        warn(
            f"the key id of the old secret of {name!r} is not known (it was added by hand), so "
            "it was left in place: delete it in the Entra admin center > App registrations > "
            f"the app > Certificates & secrets (keep {result.new_key_id}), or POST "
            f"{graph_base_url(cloud)}/applications/{result.app_object_id}/removePassword "
            '{"keyId": "<old key id>"}.'
        )
    elif result.old_removed:
        console.print(f"Removed the old secret {result.old_key_id}.", markup=False)
    else:
        warn(
            f"the old secret {result.old_key_id} could not be removed ({result.old_problem}); "
            "delete it under Certificates & secrets."
        )
