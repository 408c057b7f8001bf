"""``mailgate setup apply``, loaded only when that command runs: it needs the admin planner,
Microsoft Graph's HTTP client, the vault's certificate code and the connection test, which no
other command should pay for at start-up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import re
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mailgate.admin import build_plan, make_request
from mailgate.admin._powershell import PowerShellBlock, exchange_steps
from mailgate.admin.apply import (
    ApplyRequest,
    CertificateUpload,
    GraphCall,
    Progress,
    admin_scopes,
    apply_steps,
    dry_run,
)
from mailgate.admin.plan import (
    PLAN_CLOUDS,
    Flow,
    PlanRequest,
    delegated_scopes,
    mailbox_name,
    permissions_for,
)
from mailgate.cli._context import open_provider
from mailgate.cli._output import console, err_console, print_json, read_secret, warn
from mailgate.cli.mail import print_report
from mailgate.errors import CredentialNotFoundError, InvalidInputError, MailgateError
from mailgate.identity import ConsoleInteraction, parse_guid
from mailgate.identity.clouds import CLOUDS, get_cloud, normalize_cloud_name
from mailgate.identity.profiles import CredentialRequest, build_profile
from mailgate.mailboxes import MailboxProfile, MailboxStore
from mailgate.paths import data_dir
from mailgate.protocols.base import Protocol
from mailgate.secret import Secret
from mailgate.vault import (
    CredentialKind,
    CredentialProfile,
    DelegatedFlow,
    LoadedCertificate,
    SecretField,
    load_certificate,
)

if TYPE_CHECKING:
    from mailgate.diagnose import ConnectionReport
    from mailgate.identity import TokenProvider

__all__ = ["APPLY_CLOUDS", "apply_command", "run_apply"]

APPLY_CLOUDS = (*PLAN_CLOUDS, "sandbox")


def _render_calls(calls: list[GraphCall], base: str) -> str:
    out: list[str] = []
    for number, call in enumerate(calls, 1):
        out.append(f"# {number}. {call.step}")
        out.append(f"{call.method} {call.url(base)}")
        if call.body is not None:
            out.append(json.dumps(call.body, indent=2))
        out.append("")
    return "\n".join(out)


def _powershell_text(blocks: tuple[PowerShellBlock, ...]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        label = " (optional)" if block.optional else ""
        out.append(f"# {block.title}{label}: {block.explanation}")
        out += list(block.lines)
    return out


def _certificate_upload(
    path: Path | None, password_env: str | None, flow: Flow
) -> tuple[CertificateUpload | None, LoadedCertificate | None]:
    if flow is not Flow.CERTIFICATE:
        if path is not None:
            raise InvalidInputError("--certificate", "no certificate unless --flow certificate")
        return None, None
    if path is None:
        raise InvalidInputError("--certificate", "a PEM (key + certificate) or PFX file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError("--certificate", "a readable PEM or PFX file", str(path)) from exc
    password = (
        read_secret("certificate password", from_stdin=False, env_var=password_env, required=True)
        if password_env
        else None
    )
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    loaded = load_certificate(data, password)
    cert = x509.load_pem_x509_certificate(loaded.info.certificate_pem.encode("ascii"))
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    upload = CertificateUpload(der, loaded.info.thumbprint_sha1, loaded.info.subject)
    return upload, loaded


def _credential_profile(
    request: ApplyRequest,
    progress: Progress,
    credential: str,
    tenant: str,
    cloud: str,
    certificate: LoadedCertificate | None,
) -> tuple[CredentialProfile, dict[SecretField, Secret]] | None:
    """The vault entry for the new app; None for ROPC (the user's password is not ours)."""
    flow = request.plan.flow
    assert progress.app_id is not None
    perms = permissions_for(request.plan.protocol, flow)
    scope: str | None = None
    kind = CredentialKind.DELEGATED
    if flow.app_only:
        kind = (
            CredentialKind.CLIENT_SECRET
            if flow is Flow.CLIENT_CREDENTIALS
            else (CredentialKind.CERTIFICATE)
        )
        if request.plan.protocol is Protocol.GRAPH:
            scope = f"{get_cloud(cloud).graph_resource}/.default"
    elif flow is Flow.ROPC:
        return None
    else:
        scope = delegated_scopes(perms, get_cloud(cloud))
    profile, _warnings = build_profile(
        CredentialRequest(
            name=credential,
            kind=kind,
            client_id=progress.app_id,
            tenant=tenant,
            cloud=cloud,
            scope=scope,
            flow=DelegatedFlow(flow.value) if kind is CredentialKind.DELEGATED else None,
            secret_expires=progress.secret_expires,
            display_name=request.name,
        ),
        certificate.info if certificate else None,
    )
    profile = profile.model_copy(
        update={"app_object_id": progress.application_id, "secret_key_id": progress.secret_key_id}
    )
    secrets: dict[SecretField, Secret] = {}
    if progress.secret is not None:
        secrets[SecretField.CLIENT_SECRET] = progress.secret
    if certificate is not None:
        secrets[SecretField.PRIVATE_KEY] = certificate.private_key_pem
    return profile, secrets


def apply_command(
    *,
    protocol: str,
    flow: str,
    mailbox: list[str] | None,
    tenant: str | None,
    cloud: str,
    name: str | None,
    credential: str | None,
    secret_days: int,
    certificate: Path | None,
    cert_password_env: str | None,
    public_client: bool,
    admin_client_id: str,
    dry_run: bool,
    json_output: bool,
) -> None:
    """The body of ``mailgate setup apply`` (see its help)."""
    cloud_name = normalize_cloud_name(cloud)
    if cloud_name not in APPLY_CLOUDS:
        raise InvalidInputError("--cloud", "one of " + ", ".join(APPLY_CLOUDS), cloud)
    plan_request = make_request(
        protocol,
        flow,
        mailbox or (),
        tenant=tenant,
        cloud="global" if cloud_name == "sandbox" else cloud_name,
    )
    if not 1 <= secret_days <= 730:
        raise InvalidInputError("--secret-days", "a number of days from 1 to 730", str(secret_days))
    parse_guid("--admin-client-id", admin_client_id)
    default_name = (
        f"{plan_request.protocol.value}-{'app' if plan_request.flow.app_only else 'user'}"
    )
    credential_name = credential or default_name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", credential_name):
        raise InvalidInputError(
            "--credential", "1-64 letters, digits, '.', '_' or '-'", credential_name
        )
    upload, loaded = _certificate_upload(certificate, cert_password_env, plan_request.flow)
    request = ApplyRequest(
        plan=plan_request,
        name=(name or f"mailgate {default_name}").strip(),
        now=datetime.now(UTC).replace(microsecond=0),
        secret_days=secret_days,
        certificate=upload,
        public_client=public_client,
    )
    if dry_run:
        _print_dry_run(request, cloud_name, credential_name, json_output)
        return
    if plan_request.tenant is None:
        raise InvalidInputError("--tenant", "the directory (tenant) ID or domain to change")
    provider = open_provider(interactive=True)
    try:
        provider.vault.get(credential_name)
    except CredentialNotFoundError:
        pass
    else:
        raise InvalidInputError(
            "--credential", "a name not used yet (see `mailgate creds list`)", credential_name
        )
    run_apply(
        request,
        provider,
        tenant=plan_request.tenant,
        cloud=cloud_name,
        credential=credential_name,
        admin_client_id=admin_client_id,
        certificate=loaded,
        json_output=json_output,
    )


def _print_dry_run(request: ApplyRequest, cloud: str, credential: str, json_output: bool) -> None:
    from mailgate.admin.graph_client import graph_base_url

    base = "https://graph.microsoft.com/v1.0"
    if cloud != "sandbox":
        base = graph_base_url(CLOUDS[cloud])
    calls = dry_run(request)
    blocks = exchange_steps(
        request.plan.protocol,
        app_only=request.plan.flow.app_only,
        mailboxes=request.plan.mailboxes,
        client_id="<application (client) id>",
        sp_object_id="<service principal object id>",
    )
    if json_output:
        print_json(
            {
                "dry_run": True,
                "requests": [
                    {"step": c.step, "method": c.method, "url": c.url(base), "body": c.body}
                    for c in calls
                ],
                "credential": credential,
                "powershell": _powershell_text(blocks),
            }
        )
        return
    out = [
        f"Dry run: nothing is sent. After an admin signs in with device code, setup apply "
        f"sends these {len(calls)} Microsoft Graph requests:",
        "",
        _render_calls(calls, base),
    ]
    out.append(
        f"Then it stores the result as credential '{credential}' (the secret goes "
        "straight into the vault)."
    )
    if blocks:
        out += ["", "Graph cannot do the Exchange Online part; the admin runs:", ""]
        out += _powershell_text(blocks)
    sys.stdout.write("\n".join(out) + "\n")


def _store_credential(
    provider: TokenProvider,
    request: ApplyRequest,
    progress: Progress,
    *,
    credential: str,
    tenant: str,
    cloud: str,
    certificate: LoadedCertificate | None,
) -> bool:
    built = _credential_profile(request, progress, credential, tenant, cloud, certificate)
    if built is None:
        return False
    profile, secrets = built
    provider.vault.add(profile, secrets)
    return True


def _mailbox_profiles(request: ApplyRequest, credential: str) -> list[MailboxProfile]:
    store = MailboxStore(data_dir())
    known = {p.name for p in store.list()}
    profiles = []
    for address in request.plan.mailboxes:
        name = mailbox_name(address)
        if name in known:
            name = f"{name}-{credential}"[:64]
        if name in known:
            warn(f"mailbox profile {name!r} exists already; not adding {address} again.")
            continue
        profile = MailboxProfile(
            name=name,
            credential=credential,
            protocol=request.plan.protocol,
            address=address,
            default_folder="INBOX",
        )
        store.add(profile)
        known.add(name)
        profiles.append(profile)
    return profiles


def run_apply(
    request: ApplyRequest,
    provider: TokenProvider,
    *,
    tenant: str,
    cloud: str,
    credential: str,
    admin_client_id: str,
    certificate: LoadedCertificate | None,
    json_output: bool,
) -> None:
    """Sign the admin in, run the Graph steps, store the result, print the rest, test."""
    from mailgate.admin.graph_client import (
        GraphClient,
        StepFailed,
        drive,
        graph_base_url,
        stopped_error,
    )
    from mailgate.connect import MailboxConnector
    from mailgate.diagnose import run_connection_test

    cloud_info = get_cloud(cloud, provider.sandbox_file)
    flow = request.plan.flow
    admin = CredentialProfile(
        name="setup-admin",
        kind=CredentialKind.DELEGATED,
        cloud=cloud,
        tenant=tenant,
        client_id=admin_client_id,
        scopes=tuple(admin_scopes(cloud_info.graph_resource, flow.app_only).split()),
        flow=DelegatedFlow.DEVICE_CODE,
    )
    err_console.print("Sign in as a tenant administrator:", markup=False)
    token = provider.acquire_unsaved(admin, {}, interaction=ConsoleInteraction())
    err_console.print(f"Signed in as {token.claims.get('upn', '?')}.", markup=False)
    base = graph_base_url(cloud_info)
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=cloud_info.ca_file) if cloud_info.ca_file else True
    )
    progress = Progress()
    store = functools.partial(
        _store_credential,
        provider,
        request,
        progress,
        credential=credential,
        tenant=tenant,
        cloud=cloud,
        certificate=certificate,
    )
    with GraphClient(base, token.value, verify=verify) as client:
        try:
            drive(apply_steps(request, progress), client)
        except StepFailed as failure:
            stored = None
            if progress.secret is not None or progress.certificate_uploaded:
                # The secret's text is shown once: keep it, or the admin must make another.
                try:
                    stored = credential if store() else None
                except MailgateError as exc:
                    warn(f"the new credential could not be stored: {exc.message}")
            raise stopped_error(
                failure, progress, name=request.name, base_url=base, stored_credential=stored
            ) from failure.error
        except BaseException:
            # Interrupted (Ctrl-C) or an unexpected error after the secret was made: its text
            # exists only here, so keep it before giving up.
            if progress.secret is not None:
                with contextlib.suppress(Exception):
                    if store():
                        warn(
                            f"stopped early; the new secret is stored as credential {credential!r}."
                        )
            raise
    stored_ok = store()
    blocks = exchange_steps(
        request.plan.protocol,
        app_only=flow.app_only,
        mailboxes=request.plan.mailboxes,
        client_id=progress.app_id,
        sp_object_id=progress.service_principal_id,
    )
    required = tuple(b for b in blocks if not b.optional and b.title != "Connect")
    mailboxes = _mailbox_profiles(request, credential) if stored_ok else []
    reports = []
    if flow.app_only:
        connector = MailboxConnector(provider)
        for profile in mailboxes:
            reports.append((profile, asyncio.run(run_connection_test(connector, profile))))
    if json_output:
        print_json(
            {
                "application_id": progress.application_id,
                "app_id": progress.app_id,
                "service_principal_id": progress.service_principal_id,
                "credential": credential if stored_ok else None,
                "secret_key_id": progress.secret_key_id,
                "secret_expires": progress.secret_expires,
                "consented": progress.consented,
                "public_client_flows": progress.public_client_flows,
                "powershell": [
                    {"title": b.title, "optional": b.optional, "lines": list(b.lines)}
                    for b in blocks
                ],
                "mailboxes": [
                    {"name": p.name, "address": p.address, "test": r.as_dict()} for p, r in reports
                ],
            }
        )
    else:
        _print_applied(request, progress, credential, stored_ok, blocks, reports)
    if any(not r.ok for _p, r in reports) and not required:
        raise typer.Exit(1)


def _print_applied(
    request: ApplyRequest,
    progress: Progress,
    credential: str,
    stored: bool,
    blocks: tuple[PowerShellBlock, ...],
    reports: list[tuple[MailboxProfile, ConnectionReport]],
) -> None:
    say = functools.partial(console.print, markup=False)
    say(
        f"Created the application '{request.name}': application (client) id "
        f"{progress.app_id}, object id {progress.application_id}; service principal "
        f"{progress.service_principal_id}."
    )
    if progress.secret_key_id:
        say(
            f"Client secret {progress.secret_key_id} expires {str(progress.secret_expires)[:10]}; "
            "it went straight into the vault and is never shown."
        )
    if progress.certificate_uploaded and request.certificate:
        say(f"Certificate {request.certificate.thumbprint_sha1} uploaded.")
    say("Admin consent granted: " + (", ".join(progress.consented) or "none") + ".")
    if progress.public_client_flows:
        say("Public client flows allowed.")
    if stored:
        say(f"Stored credential '{credential}'.")
    else:
        plan = build_plan(
            PlanRequest(
                request.plan.protocol,
                request.plan.flow,
                request.plan.mailboxes,
                request.plan.tenant,
                progress.app_id,
                progress.service_principal_id,
                request.plan.cloud,
            )
        )
        say("ROPC signs in with a user's password, which mailgate does not have; store it with:")
        say(f"  {plan.mailgate_commands[0]}")
    if blocks:
        say("")
        say("Graph cannot do the Exchange Online part. Run as an Exchange administrator:")
        for line in _powershell_text(blocks):
            say(f"  {line}")
    if not request.plan.flow.app_only and stored:
        say("")
        say(f"Sign in once with `mailgate creds login {credential}`, then test the mailboxes.")
    for profile, report in reports:
        say("")
        say(f"Connection test of mailbox '{profile.name}' ({profile.address}):")
        print_report(report)
        if not report.ok and blocks:
            say(
                "  This is expected until the PowerShell above has run; then check with "
                f"`mailgate test {profile.name}`."
            )
