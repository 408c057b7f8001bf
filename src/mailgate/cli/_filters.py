"""The message filters ``get`` and ``import`` share: their options and the search they build.

Both commands declare the same parameters with these annotations (the defaults stay in each
signature), so their ``--help`` cannot drift apart, and turn the values into a
:class:`~mailgate.protocols.base.SearchCriteria` with :func:`criteria`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mailgate.errors import InvalidInputError
from mailgate.protocols.base import SearchCriteria

__all__ = [
    "Before",
    "Folder",
    "FromAddress",
    "HasAttachments",
    "Limit",
    "Since",
    "Subject",
    "Unread",
    "criteria",
]

# Typer copies the option info of an annotation for each command, so one alias serves both.
Folder = Annotated[str | None, typer.Option(help="Folder (default: the profile's).")]
Unread = Annotated[bool, typer.Option("--unread", help="Only unread mail.")]
FromAddress = Annotated[str | None, typer.Option("--from", help="Sender contains.")]
Subject = Annotated[str | None, typer.Option("--subject", help="Subject contains.")]
Since = Annotated[str | None, typer.Option(help="Received on or after YYYY-MM-DD.")]
Before = Annotated[str | None, typer.Option(help="Received before YYYY-MM-DD.")]
HasAttachments = Annotated[bool | None, typer.Option("--has-attachments/--no-has-attachments")]
Limit = Annotated[int | None, typer.Option(min=1, help="At most this many messages.")]


def criteria(
    unread: bool,
    from_address: str | None,
    subject: str | None,
    since: str | None,
    before: str | None,
    has_attachments: bool | None,
) -> SearchCriteria:
    """The search the filter options ask for; a bad date or header text is an input error."""

    def day(value: str | None, field_name: str) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInputError(field_name, "a date YYYY-MM-DD", value) from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    for field_name, text in (("--from", from_address), ("--subject", subject)):
        if text is not None:
            # Message composition only when there is a header to check: start-up time.
            from mailgate.mail.compose import check_header_value

            check_header_value(field_name, text)
    return SearchCriteria(
        unread=True if unread else None,
        from_address=from_address,
        subject_contains=subject,
        since=day(since, "--since"),
        before=day(before, "--before"),
        has_attachments=has_attachments,
    )
