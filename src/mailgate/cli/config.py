"""``mailgate config``: the settings file, effective settings per job, importing ESM's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate.cli._output import console, print_json, warn
from mailgate.errors import ConfigurationError, InvalidInputError

__all__ = ["app", "import_settings", "show"]

# Start-up: the settings models (pydantic), tomli_w and rich's tables are imported inside the
# commands, so that other commands do not pay for them.

app = typer.Typer(help="Settings: global, per mailbox, per job.", no_args_is_help=True)


@app.command("show")
def show(
    job: Annotated[str | None, typer.Argument(help="A job from [jobs.<name>].")] = None,
    mailbox: Annotated[str | None, typer.Option(help="Resolve for this mailbox.")] = None,
    effective: Annotated[
        bool, typer.Option("--effective", help="Every value after layering, with its source.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the settings file, or (``--effective``) what a job or mailbox runs with."""
    import tomli_w
    from rich.table import Table

    from mailgate.settings import config_file, load_settings, read_config

    path = config_file()
    if not effective:
        if job or mailbox:
            raise InvalidInputError("options", "--effective when naming a job or mailbox")
        data = read_config(path)
        if json_output:
            print_json({"file": str(path), "settings": data})
        elif not data:
            console.print(f"No settings in {path}: defaults apply.", markup=False)
        else:
            console.print(f"# {path}", markup=False)
            console.print(tomli_w.dumps(data), markup=False, end="")
        return
    resolved = load_settings(mailbox=mailbox, job=job)
    rows = resolved.rows()
    if json_output:
        print_json(
            {
                "job": resolved.job,
                "mailbox": resolved.mailbox,
                "settings": {key: {"value": value, "source": src} for key, value, src in rows},
            }
        )
        return
    title = "Effective settings" + "".join(
        f" {label} {value}"
        for label, value in (("for job", resolved.job), ("mailbox", resolved.mailbox))
        if value
    )
    table = Table("setting", "value", "from", title=title, title_justify="left")
    for key, value, source in rows:
        # The file's path is printed once below; in the rows its name is enough.
        table.add_row(key, value, source.replace(str(path), path.name))
    console.print(table, markup=False)
    console.print(f"{path.name}: {path}", markup=False)


@app.command("import")
def import_settings(
    file: Annotated[Path, typer.Argument(help="ESM-style key = value settings to import.")],
    job: Annotated[str | None, typer.Option(help="Write them for this job.")] = None,
    mailbox: Annotated[str | None, typer.Option(help="Write them for this mailbox.")] = None,
) -> None:
    """Import Efecte ESM's ``mail.oauth.*`` platform or mail-task settings into ``config.toml``."""
    import tomli_w

    from mailgate.fileio import exclusive_lock, write_private_file
    from mailgate.mailboxes import parse_profile_name
    from mailgate.settings import config_file, load_settings, read_config
    from mailgate.settings.esm import map_esm_settings

    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}.",
            "give the path of a UTF-8 text file with key = value lines.",
        ) from exc
    imported = map_esm_settings(text, str(file))
    if not imported.values:
        raise ConfigurationError(
            f"{file} holds none of the mail.oauth settings mailgate maps.",
            "expected keys such as mail.oauth.client.id and mail.oauth.scopes.",
        )
    if job is not None:
        parse_profile_name(job)
    if mailbox is not None:
        parse_profile_name(mailbox)
    path = config_file()
    with exclusive_lock(path.with_name(path.name + ".lock")):
        data = read_config(path)
        target = _target_table(data, job, mailbox)
        for dotted, value in imported.values.items():
            section, _, key = dotted.partition(".")
            target.setdefault(section, {})[key] = value
        # Check the result as a whole before it replaces the file.
        load_settings(job=job, mailbox=mailbox if job is None else None, path=path, data=data)
        write_private_file(path, tomli_w.dumps(data).encode("utf-8"))
    for message in imported.warnings:
        warn(message)
    where = f"jobs.{job}" if job else f"mailboxes.{mailbox}" if mailbox else "global"
    console.print(f"Imported {len(imported.mapping)} settings into {path} ({where}):", markup=False)
    for theirs, ours in imported.mapping:
        console.print(f"  {theirs} → {ours}", markup=False)


def _target_table(data: dict[str, Any], job: str | None, mailbox: str | None) -> dict[str, Any]:
    if job is not None:
        entry: dict[str, Any] = data.setdefault("jobs", {}).setdefault(job, {})
        if mailbox is not None:
            entry["mailbox"] = mailbox
        return entry
    if mailbox is not None:
        box: dict[str, Any] = data.setdefault("mailboxes", {}).setdefault(mailbox, {})
        return box
    return data
