"""``mailgate setup``: what to configure in Entra ID and Exchange Online for a protocol and flow."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mailgate.errors import InvalidInputError

app = typer.Typer(
    help="Admin setup: app registration, consent, Exchange permissions.", no_args_is_help=True
)


@app.command("plan")
def plan(
    protocol: Annotated[str, typer.Option(help="imap, pop, smtp, ews or graph.")],
    flow: Annotated[
        str, typer.Option(help="client-credentials, certificate, ropc, auth-code or device-code.")
    ],
    mailbox: Annotated[
        list[str] | None, typer.Option(help="A mailbox the app may use (repeatable).")
    ] = None,
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
    from mailgate.admin.render import FORMATS

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
