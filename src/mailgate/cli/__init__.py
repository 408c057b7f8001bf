"""The ``mailgate`` command line: a thin typer layer over the Python API.

Errors never show a traceback: a :class:`~mailgate.errors.MailgateError` prints its diagnosis and
remedy and exits with its code (2 for bad input, 1 otherwise); anything else prints one line
and exits 70. ``MAILGATE_DEBUG=1`` adds the traceback and changes nothing else (not the exit code).
"""

from __future__ import annotations

import copy
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate.cli import config, creds, importing, mail, outbox, setup
from mailgate.cli._context import open_provider, warn_expiring
from mailgate.cli._output import (
    console,
    err_console,
    escape,
    print_error,
    print_json,
    rich_console,
    show_library_warnings,
)
from mailgate.errors import ConfigurationError, MailgateError
from mailgate.processes import tune_gc_for_bulk_work

__all__ = [
    "app",
    "demo",
    "main",
    "sandbox",
    "sandbox_app",
    "sandbox_approve",
    "token",
    "version_report",
]

# Start-up time matters (a bulk ``get`` is judged against a bare imaplib loop): the command
# modules import what their commands need inside the commands, so ``mailgate get`` loads neither
# MSAL's sign-in helpers, the admin planner, the sandbox nor rich's tables.

# typer >= 0.20 ships its own copy of click with its own exception classes; older typer raises
# click's. Usage errors (missing option, unknown command) must print usage, not "internal error".
# click itself is not imported for that (it is a start-up cost): its classes are looked up
# only when an exception arrives and something has loaded click.
_USAGE_ERRORS: tuple[type[Any], ...] = ()
_ABORTS: tuple[type[BaseException], ...] = (typer.Abort,)
_EXITS: tuple[type[BaseException], ...] = (typer.Exit,)
try:
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - typer that uses click itself
    pass
else:
    _USAGE_ERRORS += (_TyperClickException,)


def _click_kind(exc: BaseException) -> str | None:
    """``usage``, ``abort`` or ``exit`` for an exception of the click package, else None."""
    click = sys.modules.get("click")
    if click is None:
        return None
    if isinstance(exc, click.exceptions.Abort):
        return "abort"
    if isinstance(exc, click.exceptions.Exit):
        return "exit"
    if isinstance(exc, click.ClickException):
        return "usage"
    return None


app = typer.Typer(
    name="mailgate",
    help="Microsoft 365 / Exchange Online mail with OAuth2: credentials, tokens, sandbox.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# Libraries whose version changes what mailgate does on the wire or on disk: a bug report
# needs them (``mailgate --version --json``).
_BEHAVIOUR_LIBRARIES = ("msal", "httpx", "cryptography", "sqlalchemy")


def version_report() -> dict[str, Any]:
    """mailgate's version and those of Python, OpenSSL and the libraries that decide behaviour."""
    import platform
    import ssl
    from importlib import metadata

    import mailgate

    libraries: dict[str, str | None] = {}
    for name in _BEHAVIOUR_LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "mailgate": mailgate.__version__,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "libraries": libraries,
    }


@app.callback(invoke_without_command=True)
def _group(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="Show mailgate's version and exit.")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="With --version: also the versions of the libraries used."),
    ] = False,
) -> None:
    # A callback keeps the app a command group however few commands it is given (see
    # _app_for), so `mailgate get ...` parses the same when only `get` is built.
    command = ctx.invoked_subcommand
    if command is not None and version:
        raise ConfigurationError(
            f"--version takes no command ({command} was given).",
            "run `mailgate --version` alone, or the command without --version.",
        )
    if command is not None and json_output:
        raise ConfigurationError(
            "--json before a command belongs to `mailgate --version`.",
            f"put --json after the command: mailgate {command} ... --json",
        )
    if command is not None:
        return
    if not version:
        raise ConfigurationError(
            "--json needs --version (or a command)." if json_output else "no command given.",
            "run `mailgate --help` for the list of commands.",
        )
    report = version_report()
    if json_output:
        print_json(report)
    else:
        console.print(f"mailgate {report['mailgate']}", markup=False)
    raise typer.Exit(0)


app.add_typer(creds.app, name="creds")
app.add_typer(setup.app, name="setup")
app.add_typer(config.app, name="config")
app.add_typer(outbox.app, name="outbox")
mail.register(app)
importing.register(app)
sandbox_app = typer.Typer(help="The local emulation of the Microsoft identity platform.")
app.add_typer(sandbox_app, name="sandbox")


@app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="Credential name.")],
    scope: Annotated[str | None, typer.Option(help="Scopes (default: the credential's).")] = None,
    force_refresh: Annotated[bool, typer.Option("--force-refresh")] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Acquire an access token and show what it grants (the token itself is never printed)."""
    provider = open_provider()
    profile = provider.vault.get(name)
    warn_expiring(profile)
    result = provider.acquire(name, scope, force_refresh=force_refresh)
    summary = {
        "credential": name,
        "source": "cache" if result.from_cache else "identity platform",
        "audience": result.audience,
        "roles": list(result.roles),
        "scp": list(result.delegated_scopes),
        "user": result.claims.get("upn"),
        "tenant": result.claims.get("tid"),
        "app_id": result.claims.get("appid") or result.claims.get("azp"),
        "expires_on": result.expires_on.astimezone(UTC).isoformat(timespec="seconds"),
        "scopes_requested": list(result.scopes),
    }
    if json_output:
        print_json(summary)
        return
    console.print(f"Token acquired for [bold]{escape(name)}[/] from the {summary['source']}.")
    for key in ("audience", "roles", "scp", "user", "tenant", "app_id", "expires_on"):
        value = summary[key]
        if value:
            shown = " ".join(value) if isinstance(value, list) else value
            console.print(f"  {key}: {shown}", markup=False)


@sandbox_app.callback(invoke_without_command=True)
def sandbox(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where the sandbox keeps its files.")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTPS port on 127.0.0.1 (0 = any free).")] = 8443,
    tenant_file: Annotated[
        Path | None, typer.Option("--tenant-file", help="Tenant TOML (default: the demo tenant).")
    ] = None,
) -> None:
    """Serve the sandbox identity platform on 127.0.0.1 until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from mailgate.paths import sandbox_description_file
    from mailgate.sandbox.server import run_forever

    directory = state_dir or sandbox_description_file().parent
    run_forever(directory, port, tenant_file)


@sandbox_app.command("approve")
def sandbox_approve(
    user_code: Annotated[str, typer.Argument(help="The code shown by the device-code sign-in.")],
    user: Annotated[str, typer.Option(help="Demo user (UPN or name) who approves.")],
    decline: Annotated[bool, typer.Option(help="Decline instead of approving.")] = False,
) -> None:
    """Approve (or decline) a device-code sign-in on the running sandbox as a demo user."""
    from mailgate.paths import sandbox_description_file
    from mailgate.testing import SandboxClient

    client = SandboxClient.from_file(sandbox_description_file())
    client.answer_device_code(user_code, user, approve=not decline)
    console.print(
        f"{'Declined' if decline else 'Approved'} device code {user_code} as {user}.",
        markup=False,
    )


@app.command("demo")
def demo(
    workdir: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo's data and sandbox here (default: temporary)."),
    ] = None,
) -> None:
    """Run the whole product end to end against the embedded sandbox."""
    from mailgate.demo import run_demo

    if run_demo(workdir, rich_console(console)):
        raise typer.Exit(1)


def _app_for(args: list[str]) -> typer.Typer:
    """``app`` with only the command or group that ``args`` starts with, if it names one.

    Typer builds every command's options from its signature on each start (~25 ms for all of
    mailgate's); a command needs only its own. Help, unknown names and options before the
    command get the whole app, so their output is unchanged.
    """
    if not args or args[0].startswith("-"):
        return app
    name = args[0]
    commands = [c for c in app.registered_commands if (c.name or _command_name(c.callback)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    only = copy.copy(app)
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _command_name(callback: Any) -> str:
    return str(getattr(callback, "__name__", "")).lower().replace("_", "-")


def main() -> None:
    """Console-script entry point: run the app, turn every failure into a readable message."""
    show_library_warnings()
    tune_gc_for_bulk_work()
    try:
        # Without standalone mode click returns (not raises) the code of typer.Exit.
        code = _app_for(sys.argv[1:])(standalone_mode=False)
    except MailgateError as exc:
        if os.environ.get("MAILGATE_DEBUG"):
            traceback.print_exc()
        print_error(exc)
        sys.exit(exc.exit_code)
    except _ABORTS:
        err_console.print("aborted.")
        sys.exit(130)
    except _EXITS as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except _USAGE_ERRORS as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted.")
        sys.exit(130)
    except Exception as exc:
        kind = _click_kind(exc)
        if kind == "abort":
            err_console.print("aborted.")
            sys.exit(130)
        if kind == "exit":
            sys.exit(getattr(exc, "exit_code", 1))
        if kind == "usage":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("MAILGATE_DEBUG"):
            # The traceback is added, never instead of the exit code: scripts that run with
            # MAILGATE_DEBUG=1 must still see 70 for a bug in mailgate.
            traceback.print_exc()
        err_console.print(
            f"[bold red]internal error:[/] {exc.__class__.__name__} at "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}. Set MAILGATE_DEBUG=1 for details and "
            "report it.",
            markup=True,
        )
        sys.exit(70)
    if isinstance(code, int) and code:
        sys.exit(code)
