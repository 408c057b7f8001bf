"""Microsoft Graph mail: pure request building and JSON parsing, no I/O.

- :func:`search_params` turns :class:`SearchCriteria` into ``$filter``/``$orderby``/``$top``.
  OData string literals double their single quotes; ``$orderby`` is only sent with properties
  that open the ``$filter`` in the same order, because Graph refuses anything else with
  ``InefficientFilter``.
- :func:`parse_summary`, :func:`parse_page`, :func:`parse_folder` read Graph's JSON.
- :func:`error_from_response` maps an HTTP status plus Graph error JSON to a mailgate error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailgate.errors import MailgateError, ProtocolError
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    MessageSummary,
    SearchCriteria,
    ThrottledError,
)
from mailgate.protocols.transport import retry_after_seconds

__all__ = [
    "HEADER_FIELDS",
    "POLICY_REMEDY",
    "WELL_KNOWN_FOLDERS",
    "GraphError",
    "GraphFolder",
    "Page",
    "error_from_response",
    "odata_datetime",
    "odata_string",
    "parse_datetime",
    "parse_folder",
    "parse_page",
    "parse_summary",
    "search_params",
    "well_known_name",
]

WELL_KNOWN_FOLDERS: dict[str, str] = {
    "inbox": "\\Inbox",
    "deleteditems": "\\Trash",
    "sentitems": "\\Sent",
    "drafts": "\\Drafts",
    "junkemail": "\\Junk",
    "archive": "\\Archive",
}
"""Graph's well-known folder names (usable in place of an id) and their IMAP special-use."""

HEADER_FIELDS = (
    "id,subject,from,toRecipients,ccRecipients,receivedDateTime,internetMessageId,"
    "isRead,flag,hasAttachments"
)
"""``$select`` for :meth:`fetch_headers`: Graph returns only what is asked, saving bandwidth."""

POLICY_REMEDY = (
    "an ApplicationAccessPolicy or RBAC for Applications scope excludes this mailbox for this "
    "app; check with Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <client id> (or "
    "Test-ServicePrincipalAuthorization) in Exchange Online PowerShell, and add the mailbox to "
    "the policy's group or scope. Also check the app has Mail.ReadWrite (Mail.Send to send) "
    "with admin consent."
)

_MAILBOX_CODES = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotFound"})
_ORDER_FIELD = "receivedDateTime"
_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


class GraphError(ProtocolError):
    """Graph answered an error mailgate has no more specific type for.

    ``status`` is the HTTP status, ``code`` Graph's ``error.code`` (e.g. ``InefficientFilter``,
    ``ErrorItemNotFound``, ``SyncStateNotFound``).
    """

    def __init__(self, message: str, remedy: str = "", *, status: int = 0, code: str = "") -> None:
        super().__init__(message, remedy)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class GraphFolder:
    """One ``mailFolder`` as Graph returns it."""

    id: str
    display_name: str
    parent_id: str | None
    total: int | None
    unread: int | None
    child_count: int
    well_known: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a collection: the values plus the link to follow, if any."""

    values: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


def well_known_name(folder: str) -> str | None:
    """The Graph well-known name for ``folder`` if it is one (``INBOX`` → ``inbox``)."""
    key = folder.strip().lower().replace(" ", "")
    return key if key in WELL_KNOWN_FOLDERS else None


def odata_string(value: str) -> str:
    """An OData string literal: single quotes around, embedded single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """An OData DateTimeOffset literal in UTC (``2024-05-01T08:00:00Z``); needs an aware value."""
    if value.tzinfo is None:
        raise ValueError("search dates must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_params(criteria: SearchCriteria, top: int) -> dict[str, str]:
    """Query parameters listing messages that match ``criteria``, oldest first.

    With any filter the ``receivedDateTime`` clause comes first (a lower bound of 1900 is
    added when no ``since`` is given) so ``$orderby=receivedDateTime`` is allowed.
    """
    clauses: list[str] = []
    if criteria.since is not None or criteria.before is not None or _has_other(criteria):
        since = criteria.since if criteria.since is not None else _EPOCH
        clauses.append(f"{_ORDER_FIELD} ge {odata_datetime(since)}")
    if criteria.before is not None:
        clauses.append(f"{_ORDER_FIELD} lt {odata_datetime(criteria.before)}")
    if criteria.unread is not None:
        clauses.append(f"isRead eq {'false' if criteria.unread else 'true'}")
    if criteria.from_address:
        clauses.append(f"from/emailAddress/address eq {odata_string(criteria.from_address)}")
    if criteria.subject_contains:
        clauses.append(f"contains(subject,{odata_string(criteria.subject_contains)})")
    if criteria.has_attachments is not None:
        clauses.append(f"hasAttachments eq {'true' if criteria.has_attachments else 'false'}")
    params = {
        "$select": f"id,{_ORDER_FIELD}",
        "$orderby": f"{_ORDER_FIELD} asc",
        "$top": str(max(1, min(top, 1000))),
    }
    if clauses:
        params["$filter"] = " and ".join(clauses)
    return params


def _has_other(criteria: SearchCriteria) -> bool:
    return (
        criteria.unread is not None
        or bool(criteria.from_address)
        or bool(criteria.subject_contains)
        or criteria.has_attachments is not None
    )


def parse_datetime(value: object) -> datetime | None:
    """Graph's ISO 8601 timestamps (``2024-05-01T08:00:00Z``) as aware datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _address(recipient: object) -> str:
    if isinstance(recipient, dict):
        inner = recipient.get("emailAddress")
        if isinstance(inner, dict):
            return str(inner.get("address") or "")
    return ""


def _addresses(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(a for a in (_address(r) for r in value) if a)


def parse_summary(obj: Mapping[str, Any], folder: str) -> MessageSummary:
    """A :class:`MessageSummary` from a Graph ``message`` selected with :data:`HEADER_FIELDS`."""
    if not isinstance(obj.get("id"), str):
        raise ProtocolError("Graph returned a message without an id.", "report this reply.")
    flag = obj.get("flag")
    flagged = isinstance(flag, dict) and flag.get("flagStatus") == "flagged"
    has_attachments = obj.get("hasAttachments")
    return MessageSummary(
        ref=MessageRef(folder, obj["id"], obj.get("changeKey")),
        subject=str(obj.get("subject") or ""),
        from_address=_address(obj.get("from")),
        to=_addresses(obj.get("toRecipients")),
        cc=_addresses(obj.get("ccRecipients")),
        date=parse_datetime(obj.get("receivedDateTime")),
        message_id=obj.get("internetMessageId") or None,
        size=None,  # Graph exposes no size property on message
        seen=bool(obj.get("isRead")),
        flagged=flagged,
        has_attachments=has_attachments if isinstance(has_attachments, bool) else None,
    )


def parse_page(obj: Mapping[str, Any]) -> Page:
    """``value`` plus ``@odata.nextLink``/``@odata.deltaLink`` of a collection response."""
    values = obj.get("value")
    if not isinstance(values, list):
        raise ProtocolError("Graph returned a collection without 'value'.", "report this reply.")
    next_link = obj.get("@odata.nextLink")
    delta_link = obj.get("@odata.deltaLink")
    return Page(
        [v for v in values if isinstance(v, dict)],
        next_link if isinstance(next_link, str) else None,
        delta_link if isinstance(delta_link, str) else None,
    )


def parse_folder(obj: Mapping[str, Any]) -> GraphFolder:
    """A :class:`GraphFolder` from a ``mailFolder`` object."""
    if not isinstance(obj.get("id"), str):
        raise ProtocolError("Graph returned a folder without an id.", "report this reply.")
    well_known = obj.get("wellKnownName")

    def count(name: str) -> int | None:
        value = obj.get(name)
        return value if isinstance(value, int) else None

    return GraphFolder(
        id=obj["id"],
        display_name=str(obj.get("displayName") or ""),
        parent_id=obj.get("parentFolderId") or None,
        total=count("totalItemCount"),
        unread=count("unreadItemCount"),
        child_count=count("childFolderCount") or 0,
        well_known=well_known.lower() if isinstance(well_known, str) and well_known else None,
    )


def _error_body(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", body[:200].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, mailbox: str, action: str
) -> MailgateError:
    """The mailgate error for a failed Graph call (``action`` says what was attempted)."""
    code, message = _error_body(body)
    detail = f"{code}: {message}" if code else message
    where = f"Graph {action} on {mailbox}"
    if status == 401:
        diagnostics = headers.get("x-ms-diagnostics", "")
        return MailAuthenticationError(
            f"{where}: the access token was refused ({detail or 'HTTP 401'}).",
            "use a token for https://graph.microsoft.com (app-only scope "
            "https://graph.microsoft.com/.default) that has not expired and comes from the "
            "mailbox's tenant.",
            reply=diagnostics or detail,
        )
    if status == 403:
        return MailboxAccessError(
            f"{where}: access denied ({detail or 'HTTP 403'}).", POLICY_REMEDY, reply=detail
        )
    if status == 404 and code in _MAILBOX_CODES:
        return MailboxAccessError(
            f"{where}: the mailbox cannot be used over Graph ({detail}).",
            "check the address is the mailbox's primary SMTP address in this tenant, that it "
            "is licensed for Exchange Online and not on-premises only.",
            reply=detail,
        )
    if status in (429, 503):
        wait = retry_after_seconds(headers.get("retry-after"))
        return ThrottledError(
            f"{where}: throttled ({detail or f'HTTP {status}'}).",
            "wait and retry; Outlook allows 10,000 requests per 10 minutes and 4 concurrent "
            "requests per app and mailbox.",
            retry_after=wait or 0.0,
        )
    if status == 404:
        return GraphError(
            f"{where}: not found ({detail or 'HTTP 404'}).",
            "the message or folder was moved or deleted meanwhile; search again.",
            status=status,
            code=code,
        )
    return GraphError(
        f"{where} failed with HTTP {status} ({detail or 'no detail'}).",
        "check the request; if it persists, report the reply.",
        status=status,
        code=code,
    )
