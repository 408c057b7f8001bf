"""The Graph mail operations over the sandbox store, one function per route.

Each takes a :class:`GraphContext` (the authorised access, the mailbox, the parsed request) and
returns a response or raises :class:`GraphError`; :mod:`mailgate.sandbox.graph.routes` does the
HTTP, authorisation and throttling around them. Semantics follow design/microsoft-facts.md §5:
move/copy answer 201 with the message under its new id, DELETE moves to Deleted Items (and
purges from there), ``sendMail`` answers 202 with no body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse

from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import GRAPH_SEND, MailAccess, MailAccessDenied, check_send_as
from mailgate.sandbox.exchange.store import StoredFolder, StoredMailbox, StoredMessage
from mailgate.sandbox.graph.delta import DeltaTokens
from mailgate.sandbox.graph.query import (
    MessageFacts,
    matches,
    page_link,
    parse_options,
    parse_select,
)
from mailgate.sandbox.graph.resources import (
    FolderView,
    MessageView,
    folder_json,
    message_json,
    mime_from_json,
    project,
)

__all__ = [
    "GraphContext",
    "GraphError",
    "copy_message",
    "create_folder",
    "create_message",
    "delete_message",
    "folder_of",
    "get_folder",
    "get_message",
    "get_mime",
    "list_folders",
    "list_messages",
    "message_facts",
    "message_view",
    "move_message",
    "purge_message",
    "root_folder_id",
    "send_mail",
    "strip_bcc",
    "submission_parts",
    "update_message",
]

_NOT_FOUND = "The specified object was not found in the store."
_MIME_CHUNK = 64 * 1024


class GraphError(Exception):
    """An operation's refusal in Graph's terms."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class GraphContext:
    """One authorised request: who, which mailbox, and what was asked."""

    mail: SandboxMail
    access: MailAccess
    box: StoredMailbox
    base_url: str
    url: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    delta: DeltaTokens
    now: datetime
    path: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The request body as a JSON object; 400 if it is not one."""
        try:
            data = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return data

    def context(self, suffix: str) -> str:
        """An ``@odata.context`` URL for this mailbox."""
        return f"{self.base_url}/v1.0/$metadata#users('{self.box.address}')/{suffix}"


def root_folder_id(box: StoredMailbox) -> str:
    """The id of the mailbox's "Top of Information Store" (parent of the top-level folders)."""
    digest = hashlib.sha256(box.address.lower().encode()).digest()
    return "AAMkRoot" + base64.urlsafe_b64encode(digest[:18]).decode()


def message_view(folder: StoredFolder, msg: StoredMessage) -> MessageView:
    """What the renderers need of a stored message."""
    return MessageView(
        item_id=msg.item_id,
        change_key=msg.change_key,
        folder_id=folder.folder_id,
        raw=msg.raw,
        is_read=msg.is_read,
        flagged="\\Flagged" in msg.flags,
        received=msg.internal_date,
    )


def message_facts(msg: StoredMessage) -> MessageFacts:
    return MessageFacts(
        is_read=msg.is_read,
        has_attachments=msg.has_attachments,
        received=msg.internal_date,
        from_address=msg.from_address,
        subject=msg.subject,
    )


def _is_root(box: StoredMailbox, key: str) -> bool:
    return key.lower() in ("msgfolderroot", "root") or key == root_folder_id(box)


def folder_of(ctx: GraphContext, key: str) -> StoredFolder:
    try:
        return ctx.box.folder(key)
    except KeyError as exc:
        raise GraphError(404, "ErrorItemNotFound", _NOT_FOUND) from exc


def _message(ctx: GraphContext) -> tuple[StoredFolder, StoredMessage]:
    try:
        return ctx.box.get(ctx.path["message"])
    except KeyError as exc:
        raise GraphError(404, "ErrorItemNotFound", _NOT_FOUND) from exc


def _folder_view(
    box: StoredMailbox, folder: StoredFolder, all_folders: list[StoredFolder]
) -> FolderView:
    messages = box.messages(folder.folder_id)
    return FolderView(
        folder_id=folder.folder_id,
        display_name=folder.name.rpartition("/")[2],
        parent_id=folder.parent_id or root_folder_id(box),
        child_count=sum(1 for f in all_folders if f.parent_id == folder.folder_id),
        unread=sum(1 for m in messages if not m.is_read),
        total=len(messages),
        size=sum(m.size for m in messages),
    )


def _root_view(box: StoredMailbox, all_folders: list[StoredFolder]) -> FolderView:
    return FolderView(
        root_folder_id(box),
        "Top of Information Store",
        "",
        sum(1 for f in all_folders if f.parent_id is None),
        0,
        0,
    )


def _page(
    ctx: GraphContext, items: list[dict[str, Any]], context: str, default_top: int = 10
) -> Response:
    options = parse_options([(k, v) for k, v in ctx.params if k != "$filter"])
    top = options.top if any(k == "$top" for k, _ in ctx.params) else default_top
    chunk = items[options.skip : options.skip + top]
    body: dict[str, Any] = {"@odata.context": ctx.context(context), "value": chunk}
    if options.skip + top < len(items):
        body["@odata.nextLink"] = page_link(ctx.url, ctx.params, options.skip + top)
    return JSONResponse(body)


# -- folders ----------------------------------------------------------------------------------


def list_folders(ctx: GraphContext) -> Response:
    """``GET mailFolders`` (top level) or ``GET mailFolders/{f}/childFolders``."""
    folders = ctx.box.folders()
    if "folder" in ctx.path and not _is_root(ctx.box, ctx.path["folder"]):
        parent_id: str | None = folder_of(ctx, ctx.path["folder"]).folder_id
    else:
        parent_id = None
    chosen = [f for f in folders if f.parent_id == parent_id]
    items = [folder_json(_folder_view(ctx.box, f, folders)) for f in chosen]
    return _page(ctx, items, "mailFolders")


def get_folder(ctx: GraphContext) -> Response:
    """``GET mailFolders/{f}``."""
    folders = ctx.box.folders()
    if _is_root(ctx.box, ctx.path["folder"]):
        view = _root_view(ctx.box, folders)
    else:
        view = _folder_view(ctx.box, folder_of(ctx, ctx.path["folder"]), folders)
    return JSONResponse({"@odata.context": ctx.context("mailFolders/$entity"), **folder_json(view)})


def create_folder(ctx: GraphContext) -> Response:
    """``POST mailFolders`` or ``POST mailFolders/{f}/childFolders`` with ``displayName``."""
    name = ctx.json().get("displayName")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise GraphError(400, "ErrorInvalidParameter", "displayName must be a non-empty string.")
    parent = None
    if "folder" in ctx.path and not _is_root(ctx.box, ctx.path["folder"]):
        parent = folder_of(ctx, ctx.path["folder"]).folder_id
    try:
        created = ctx.box.create_folder(name.strip(), parent)
    except ValueError as exc:
        raise GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        ) from exc
    view = _folder_view(ctx.box, created, ctx.box.folders())
    return JSONResponse(folder_json(view), status_code=201)


# -- messages ---------------------------------------------------------------------------------


def list_messages(ctx: GraphContext) -> Response:
    """``GET messages`` (every folder) or ``GET mailFolders/{f}/messages``."""
    options = parse_options(ctx.params)
    folders = [folder_of(ctx, ctx.path["folder"])] if "folder" in ctx.path else ctx.box.folders()
    found = [
        (folder, msg)
        for folder in folders
        for msg in ctx.box.messages(folder.folder_id)
        if matches(options.filter, message_facts(msg))
    ]
    found.sort(key=lambda pair: (pair[1].internal_date, pair[1].uid), reverse=options.descending)
    chunk = found[options.skip : options.skip + options.top]
    value = [
        project(message_json(message_view(f, m), ctx.base_url), options.select) for f, m in chunk
    ]
    body: dict[str, Any] = {"@odata.context": ctx.context("messages"), "value": value}
    if options.skip + options.top < len(found):
        body["@odata.nextLink"] = page_link(ctx.url, ctx.params, options.skip + options.top)
    return JSONResponse(body)


def _select(ctx: GraphContext) -> tuple[str, ...] | None:
    for key, value in ctx.params:
        if key == "$select":
            return parse_select(value)
    return None


def get_message(ctx: GraphContext) -> Response:
    """``GET messages/{id}``."""
    folder, msg = _message(ctx)
    body = project(message_json(message_view(folder, msg), ctx.base_url), _select(ctx))
    return JSONResponse({"@odata.context": ctx.context("messages/$entity"), **body})


def get_mime(ctx: GraphContext) -> Response:
    """``GET messages/{id}/$value``: the stored RFC 822 bytes, streamed."""
    _where, msg = _message(ctx)
    raw = msg.raw

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), _MIME_CHUNK):
            yield raw[start : start + _MIME_CHUNK]

    return StreamingResponse(chunks(), media_type="text/plain")


def update_message(ctx: GraphContext) -> Response:
    """``PATCH messages/{id}`` with ``isRead`` and/or ``flag``."""
    data = ctx.json()
    unknown = set(data) - {"isRead", "flag", "categories", "importance"}
    if unknown:
        raise GraphError(
            400, "ErrorInvalidProperty", f"The property '{sorted(unknown)[0]}' cannot be updated."
        )
    add: set[str] = set()
    remove: set[str] = set()
    if "isRead" in data:
        if not isinstance(data["isRead"], bool):
            raise GraphError(400, "BadRequest", "isRead must be true or false.")
        (add if data["isRead"] else remove).add("\\Seen")
    if "flag" in data:
        status = (data["flag"] or {}).get("flagStatus") if isinstance(data["flag"], dict) else None
        if status not in ("flagged", "notFlagged", "complete"):
            raise GraphError(
                400, "BadRequest", "flag.flagStatus must be flagged, notFlagged or complete."
            )
        (add if status == "flagged" else remove).add("\\Flagged")
    _message(ctx)
    msg = ctx.box.set_flags(ctx.path["message"], add=add, remove=remove)
    folder, msg = ctx.box.get(msg.item_id)
    return JSONResponse(message_json(message_view(folder, msg), ctx.base_url))


def _destination(ctx: GraphContext) -> StoredFolder:
    dest = ctx.json().get("destinationId")
    if not isinstance(dest, str) or not dest:
        raise GraphError(400, "ErrorInvalidParameter", "destinationId is required.")
    return folder_of(ctx, dest)


def move_message(ctx: GraphContext) -> Response:
    """``POST messages/{id}/move``: 201 with the message under its new id."""
    dest = _destination(ctx)
    _message(ctx)
    moved = ctx.box.move(ctx.path["message"], dest.folder_id)
    return JSONResponse(message_json(message_view(dest, moved), ctx.base_url), status_code=201)


def copy_message(ctx: GraphContext) -> Response:
    """``POST messages/{id}/copy``: 201 with the copy."""
    dest = _destination(ctx)
    _message(ctx)
    copied = ctx.box.copy(ctx.path["message"], dest.folder_id)
    return JSONResponse(message_json(message_view(dest, copied), ctx.base_url), status_code=201)


def delete_message(ctx: GraphContext) -> Response:
    """``DELETE messages/{id}``: to Deleted Items; from Deleted Items out of sight (purged)."""
    folder, _msg = _message(ctx)
    if folder.well_known == "deleteditems":
        ctx.box.remove(ctx.path["message"])
    else:
        ctx.box.soft_delete(ctx.path["message"])
    return Response(status_code=204)


def purge_message(ctx: GraphContext) -> Response:
    """``POST messages/{id}/permanentDelete``."""
    _message(ctx)
    ctx.box.remove(ctx.path["message"])
    return Response(status_code=204)


def create_message(ctx: GraphContext) -> Response:
    """``POST mailFolders/{f}/messages``: a draft from JSON, 201."""
    folder = folder_of(ctx, ctx.path["folder"])
    try:
        msg = mime_from_json(ctx.json(), ctx.box.address, ctx.now, require_recipients=False)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", str(exc)) from exc
    stored = ctx.box.append(folder.folder_id, msg.as_bytes(), {"\\Draft", "\\Seen"})
    return JSONResponse(message_json(message_view(folder, stored), ctx.base_url), status_code=201)


# -- sending ----------------------------------------------------------------------------------


def submission_parts(raw: bytes) -> tuple[str, list[str]]:
    headers = BytesParser(policy=default_policy).parsebytes(raw, headersonly=True)
    values = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    sender = getaddresses([str(headers.get("From", ""))])
    return (sender[0][1] if sender else ""), [a for _, a in getaddresses(values) if a]


def strip_bcc(raw: bytes) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.splitlines(keepends=True)
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return b"".join(kept) + sep + body


def send_mail(ctx: GraphContext) -> Response:
    """``POST sendMail``: JSON ``{"message", "saveToSentItems"}`` or base64 MIME; 202."""
    if GRAPH_SEND not in ctx.access.permissions:
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    save = True
    if ctx.headers.get("content-type", "").lower().startswith("text/plain"):
        try:
            raw = base64.b64decode(ctx.body.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GraphError(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            ) from exc
    else:
        data = ctx.json()
        message = data.get("message")
        if not isinstance(message, dict):
            raise GraphError(400, "ErrorInvalidRequest", "The 'message' property is required.")
        save = data.get("saveToSentItems", True) is not False
        try:
            raw = mime_from_json(message, ctx.box.address, ctx.now).as_bytes()
        except ValueError as exc:
            raise GraphError(400, "ErrorInvalidRecipients", str(exc)) from exc
    sender, recipients = submission_parts(raw)
    if not recipients:
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is required.")
    try:
        check_send_as(ctx.mail, ctx.access, sender or ctx.box.address)
    except MailAccessDenied as exc:
        raise GraphError(
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to"
            " send mail on behalf of the specified sending account., Cannot submit message.",
        ) from exc
    ctx.mail.store.deliver(strip_bcc(raw), recipients)
    if save:
        ctx.box.append("sentitems", raw, {"\\Seen"})
    if ctx.mail.answer_lost("graph"):  # as a gateway that gave up waiting for Exchange
        return Response(b"Gateway Timeout", status_code=504)
    return Response(status_code=202)
