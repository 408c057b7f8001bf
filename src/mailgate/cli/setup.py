"""``mailgate setup``: what to configure in Entra ID and Exchange Online (``plan``), and doing
it through Microsoft Graph after an admin signs in with device code (``apply``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mailgate.errors import InvalidInputError
from mailgate.identity.clouds import GRAPH_CLI_CLIENT_ID

__all__ = [
    "FORMATS",
    "SECRET_DAYS",
    "FlowOption",
    "MailboxesOption",
    "ProtocolOption",
    "app",
    "apply",
    "plan",
]

# Start-up: the planner, Graph's HTTP client, the vault's certificate code and the connection
# test load when a command runs (``apply``'s body lives in cli/_setup_apply.py).
SECRET_DAYS = 180  # admin/plan.py's SECRET_DAYS; tests/unit keeps them equal
FORMATS = ("text", "markdown", "json")  # admin/render.py's FORMATS, likewise

ProtocolOption = Annotated[str, typer.Option(help="imap, pop, smtp, ews or graph.")]
FlowOption = Annotated[
    str, typer.Option(help="client-credentials, certificate, ropc, auth-code or device-code.")
]
MailboxesOption = Annotated[
    list[str] | None, typer.Option(help="A mailbox the app may use (repeatable).")
]

app = typer.Typer(
    help="Admin setup: app registration, consent, Exchange permissions.", no_args_is_help=True
)


@app.command("plan")
def plan(
    protocol: ProtocolOption,
    flow: FlowOption,
    mailbox: MailboxesOption = None,
    tenant: Annotated[str | None, typer.Option(help="Directory (tenant) ID or domain.")] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Application (client) ID.")
    ] = None,
    sp_object_id: Annotated[
        str | None,
        typer.Option("--sp-object-id", help="Object ID on the Enterprise applications page."),
    ] = None,
    cloud: Annotated[str, typer.Option(help="global, usgov, usgov-dod or china.")] = "global",
    fmt: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
) -> None:
    """Print the permissions, consent URL, settings and PowerShell to set up one integration."""
    from mailgate.admin import build_plan, make_request, render

    if fmt not in FORMATS:
        raise InvalidInputError("--format", "one of " + ", ".join(FORMATS), fmt)
    request = make_request(
        protocol,
        flow,
        mailbox or (),
        tenant=tenant,
        client_id=client_id,
        sp_object_id=sp_object_id,
        cloud=cloud,
    )
    sys.stdout.write(render(build_plan(request), fmt))


@app.command("apply")
def apply(
    protocol: ProtocolOption,
    flow: FlowOption,
    mailbox: MailboxesOption = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="Directory (tenant) ID or domain (required unless --dry-run)."),
    ] = None,
    cloud: Annotated[
        str, typer.Option(help="global, usgov, usgov-dod, china or sandbox.")
    ] = "global",
    name: Annotated[str | None, typer.Option(help="Display name of the app registration.")] = None,
    credential: Annotated[
        str | None, typer.Option(help="Vault name for the new credential (default <protocol>-app).")
    ] = None,
    secret_days: Annotated[
        int, typer.Option("--secret-days", help="Lifetime of the client secret in days.")
    ] = SECRET_DAYS,
    certificate: Annotated[
        Path | None, typer.Option(help="Certificate for --flow certificate: PEM (key+cert) or PFX.")
    ] = None,
    cert_password_env: Annotated[
        str | None, typer.Option("--cert-password-env", metavar="VAR")
    ] = None,
    public_client: Annotated[
        bool, typer.Option("--public-client", help="Allow public client flows.")
    ] = False,
    admin_client_id: Annotated[
        str,
        typer.Option(
            "--admin-client-id", help="Public client the admin signs in with (device code)."
        ),
    ] = GRAPH_CLI_CLIENT_ID,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every Graph request; send nothing.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register the app through Microsoft Graph after an admin signs in with device code.

    Creates the application, its service principal, a secret (or uploads the certificate),
    grants admin consent and, for ROPC/device code, allows public client flows; stores the
    credential in the vault, prints the Exchange PowerShell Graph cannot do, and runs the
    connection test for each --mailbox.
    """
    from mailgate.cli._setup_apply import apply_command

    apply_command(
        protocol=protocol,
        flow=flow,
        mailbox=mailbox,
        tenant=tenant,
        cloud=cloud,
        name=name,
        credential=credential,
        secret_days=secret_days,
        certificate=certificate,
        cert_password_env=cert_password_env,
        public_client=public_client,
        admin_client_id=admin_client_id,
        dry_run=dry_run,
        json_output=json_output,
    )
