"""EWS item operations over the sandbox store: find, get, update, move, copy, delete, create
(send), SyncFolderItems, and the ConvertId exchangelib uses to probe the server version.

Choices where Exchange's behaviour is not ours to copy exactly (documented in
docs/sandbox.md): ``SoftDelete`` and ``MoveToDeletedItems`` both move to Deleted Items (there
is no dumpster); only ``message:IsRead`` (and ``item:Flag``-less) updates are supported;
``SyncState`` is an opaque server-side token, unknown ones answer ``ErrorInvalidSyncStateData``.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from mailgate.sandbox.ews.envelope import m, response, response_message, sub, t
from mailgate.sandbox.ews.ops import FOLDER_NOT_FOUND, EwsContext, folder_ref
from mailgate.sandbox.ews.render import item_id_xml, message_xml
from mailgate.sandbox.ews.restriction import (
    parse_page_view,
    parse_restriction,
    parse_shape,
    sort_descending,
)
from mailgate.sandbox.exchange.rules import MailAccessDenied, check_send_as
from mailgate.sandbox.graph.delta import DeltaState
from mailgate.sandbox.graph.ops import message_facts, message_view, strip_bcc, submission_parts
from mailgate.sandbox.graph.query import matches

__all__ = [
    "ITEM_NOT_FOUND",
    "convert_id",
    "copy_item",
    "create_item",
    "delete_item",
    "find_item",
    "get_item",
    "move_item",
    "sync_folder_items",
    "update_item",
]

ITEM_NOT_FOUND = "The specified object was not found in the store."


def _item_ids(ctx: EwsContext, container: str = "ItemIds") -> list[str]:
    holder = ctx.request.find(m(container))
    return [e.get("Id", "") for e in holder] if holder is not None else []


def _not_found(op: str) -> ET.Element:
    return response_message(op, "ErrorItemNotFound", ITEM_NOT_FOUND)


def find_item(ctx: EwsContext) -> list[ET.Element]:
    """FindItem (Shallow) with Restriction, SortOrder and IndexedPageItemView."""
    shape = parse_shape(ctx.request)
    conditions = parse_restriction(ctx.request.find(m("Restriction")))
    view = parse_page_view(ctx.request)
    descending = sort_descending(ctx.request)
    messages = []
    holder = ctx.request.find(m("ParentFolderIds"))
    for elem in list(holder) if holder is not None else []:
        try:
            ref = folder_ref(ctx, elem)
        except KeyError:
            messages.append(response_message("FindItem", "ErrorFolderNotFound", FOLDER_NOT_FOUND))
            continue
        found = [
            msg
            for msg in (ctx.box.messages(ref.store_id) if ref.folder else [])
            if matches(conditions, message_facts(msg))
        ]
        found.sort(key=lambda msg: (msg.internal_date, msg.uid), reverse=descending)
        if view.from_end:
            found.reverse()
        end = len(found) if view.max_entries is None else view.offset + view.max_entries
        chunk = found[view.offset : end]
        root = ET.Element(
            m("RootFolder"),
            {
                "IndexedPagingOffset": str(view.offset + len(chunk)),
                "TotalItemsInView": str(len(found)),
                "IncludesLastItemInRange": str(end >= len(found)).lower(),
            },
        )
        items = sub(root, t("Items"))
        assert ref.folder is not None or not chunk
        for msg in chunk:
            assert ref.folder is not None
            items.append(message_xml(message_view(ref.folder, msg), shape, with_body=False))
        messages.append(response_message("FindItem", children=[root]))
    return [response("FindItem", messages)]


def get_item(ctx: EwsContext) -> list[ET.Element]:
    """GetItem; ``IncludeMimeContent`` adds base64 ``t:MimeContent``."""
    shape = parse_shape(ctx.request)
    messages = []
    for item_id in _item_ids(ctx):
        try:
            folder, msg = ctx.box.get(item_id)
        except KeyError:
            messages.append(_not_found("GetItem"))
            continue
        holder = ET.Element(m("Items"))
        holder.append(message_xml(message_view(folder, msg), shape))
        messages.append(response_message("GetItem", children=[holder]))
    return [response("GetItem", messages)]


def _id_only(ctx: EwsContext, op: str, item_id: str) -> ET.Element:
    folder, msg = ctx.box.get(item_id)
    holder = ET.Element(m("Items"))
    item_id_xml(sub(holder, t("Message")), message_view(folder, msg))
    return response_message(op, children=[holder])


def update_item(ctx: EwsContext) -> list[ET.Element]:
    """UpdateItem: ``SetItemField`` of ``message:IsRead`` (and ``DeleteItemField`` of it)."""
    messages = []
    changes = ctx.request.find(m("ItemChanges"))
    for change in list(changes) if changes is not None else []:
        id_elem = change.find(t("ItemId"))
        item_id = id_elem.get("Id", "") if id_elem is not None else ""
        add: set[str] = set()
        remove: set[str] = set()
        unsupported = False
        updates = change.find(t("Updates"))
        for update in list(updates) if updates is not None else []:
            uri = update.find(t("FieldURI"))
            name = (uri.get("FieldURI") or "") if uri is not None else ""
            if name != "message:IsRead":
                unsupported = True
                continue
            value = (update.findtext(f"{t('Message')}/{t('IsRead')}") or "false").lower()
            # xs:boolean: exchangelib writes 1/0, others true/false.
            (add if value in ("true", "1") else remove).add("\\Seen")
        if unsupported:
            messages.append(
                response_message(
                    "UpdateItem",
                    "ErrorInvalidPropertySet",
                    "The sandbox updates message:IsRead only.",
                )
            )
            continue
        try:
            ctx.box.set_flags(item_id, add=add, remove=remove)
            reply = _id_only(ctx, "UpdateItem", item_id)
        except KeyError:
            messages.append(_not_found("UpdateItem"))
            continue
        conflicts = sub(reply, m("ConflictResults"))
        sub(conflicts, t("Count"), "0")
        messages.append(reply)
    return [response("UpdateItem", messages)]


def _transfer(ctx: EwsContext, op: str, copy: bool) -> list[ET.Element]:
    target = ctx.request.find(m("ToFolderId"))
    try:
        if target is None or len(target) == 0:
            raise KeyError("ToFolderId")
        dest = folder_ref(ctx, target[0])
        if dest.folder is None:
            raise KeyError("not a mail folder")
    except KeyError:
        return [response(op, [response_message(op, "ErrorFolderNotFound", FOLDER_NOT_FOUND)])]
    messages = []
    for item_id in _item_ids(ctx):
        try:
            ctx.box.get(item_id)
        except KeyError:
            messages.append(_not_found(op))
            continue
        moved = (ctx.box.copy if copy else ctx.box.move)(item_id, dest.store_id)
        messages.append(_id_only(ctx, op, moved.item_id))
    return [response(op, messages)]


def move_item(ctx: EwsContext) -> list[ET.Element]:
    """MoveItem: the moved items come back with their new ids."""
    return _transfer(ctx, "MoveItem", copy=False)


def copy_item(ctx: EwsContext) -> list[ET.Element]:
    """CopyItem."""
    return _transfer(ctx, "CopyItem", copy=True)


def delete_item(ctx: EwsContext) -> list[ET.Element]:
    """DeleteItem: HardDelete removes; SoftDelete and MoveToDeletedItems go to Deleted Items."""
    hard = ctx.request.get("DeleteType", "MoveToDeletedItems") == "HardDelete"
    messages = []
    for item_id in _item_ids(ctx):
        try:
            folder, _msg = ctx.box.get(item_id)
        except KeyError:
            messages.append(_not_found("DeleteItem"))
            continue
        if hard or folder.well_known == "deleteditems":
            ctx.box.remove(item_id)
        else:
            ctx.box.soft_delete(item_id)
        messages.append(response_message("DeleteItem"))
    return [response("DeleteItem", messages)]


def _mailboxes(elem: ET.Element, tag: str) -> list[str]:
    return [
        formataddr((box.findtext(t("Name")) or "", box.findtext(t("EmailAddress")) or ""))
        for box in elem.iterfind(f"{t(tag)}/{t('Mailbox')}")
    ]


def _mime_of(ctx: EwsContext, item: ET.Element) -> bytes:
    mime = item.findtext(t("MimeContent"))
    if mime:
        try:
            return base64.b64decode(mime.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("MimeContent is not valid base64.") from exc
    msg = EmailMessage()
    sender = item.findtext(f"{t('From')}/{t('Mailbox')}/{t('EmailAddress')}")
    msg["From"] = sender or ctx.box.address
    for header, tag in (("To", "ToRecipients"), ("Cc", "CcRecipients"), ("Bcc", "BccRecipients")):
        found = _mailboxes(item, tag)
        if found:
            msg[header] = ", ".join(found)
    msg["Subject"] = item.findtext(t("Subject")) or ""
    msg["Date"] = format_datetime(ctx.now)
    msg["Message-ID"] = make_msgid(domain=ctx.box.address.rpartition("@")[2] or "sandbox")
    body = item.find(t("Body"))
    content = body.text or "" if body is not None else ""
    is_html = body is not None and body.get("BodyType", "Text") == "HTML"
    msg.set_content(content, subtype="html" if is_html else "plain")
    return msg.as_bytes()


def create_item(ctx: EwsContext) -> list[ET.Element]:
    """CreateItem: SaveOnly (to Drafts or SavedItemFolderId), SendOnly, SendAndSaveCopy."""
    disposition = ctx.request.get("MessageDisposition", "SaveOnly")
    saved = ctx.request.find(f"{m('SavedItemFolderId')}/*")
    messages = []
    items = ctx.request.find(m("Items"))
    for item in list(items) if items is not None else []:
        try:
            raw = _mime_of(ctx, item)
        except ValueError as exc:
            messages.append(response_message("CreateItem", "ErrorMimeContentInvalid", str(exc)))
            continue
        try:
            target = folder_ref(ctx, saved).store_id if saved is not None else ""
        except KeyError:
            messages.append(response_message("CreateItem", "ErrorFolderNotFound", FOLDER_NOT_FOUND))
            continue
        if disposition == "SaveOnly":
            stored = ctx.box.append(target or "drafts", raw, {"\\Draft", "\\Seen"})
            messages.append(_id_only(ctx, "CreateItem", stored.item_id))
            continue
        sender, recipients = submission_parts(raw)
        if not recipients:
            messages.append(
                response_message(
                    "CreateItem", "ErrorInvalidRecipients", "At least one recipient is required."
                )
            )
            continue
        try:
            check_send_as(ctx.mail, ctx.access, sender or ctx.box.address)
        except MailAccessDenied:
            messages.append(
                response_message(
                    "CreateItem",
                    "ErrorSendAsDenied",
                    "The user account which was used to submit this request does not have the"
                    " right to send mail on behalf of the specified sending account.",
                )
            )
            continue
        ctx.mail.store.deliver(strip_bcc(raw), recipients)
        if disposition == "SendAndSaveCopy":
            ctx.box.append(target or "sentitems", raw, {"\\Seen"})
        messages.append(response_message("CreateItem", children=[ET.Element(m("Items"))]))
    return [response("CreateItem", messages)]


def sync_folder_items(ctx: EwsContext) -> list[ET.Element]:
    """SyncFolderItems: Create/Update/Delete changes since SyncState, MaxChangesReturned."""
    shape = parse_shape(ctx.request)
    target = ctx.request.find(f"{m('SyncFolderId')}/*")
    try:
        if target is None:
            raise KeyError("SyncFolderId")
        ref = folder_ref(ctx, target)
        if ref.folder is None:
            raise KeyError("not a mail folder")
    except KeyError:
        return [
            response(
                "SyncFolderItems",
                [response_message("SyncFolderItems", "ErrorFolderNotFound", FOLDER_NOT_FOUND)],
            )
        ]
    folder = ref.folder
    mailbox = ctx.box.address.lower()
    token = (ctx.request.findtext(m("SyncState")) or "").strip()
    if token:
        state = ctx.sync.redeem(token, mailbox, folder.folder_id)
        if state is None:
            return [
                response(
                    "SyncFolderItems",
                    [
                        response_message(
                            "SyncFolderItems",
                            "ErrorInvalidSyncStateData",
                            "Synchronization state data is corrupt or otherwise invalid.",
                        )
                    ],
                )
            ]
    else:
        state = DeltaState(mailbox, folder.folder_id, 0)
    pending = state.pending
    sync = state.sync
    if pending is None:
        changes, sync = ctx.box.changes(folder.folder_id, state.sync)
        pending = tuple(changes)
    limit = int(ctx.request.findtext(m("MaxChangesReturned")) or "512")
    chunk, rest = pending[: max(1, limit)], pending[max(1, limit) :]
    new_token = ctx.sync.issue(DeltaState(mailbox, folder.folder_id, sync, rest or None))
    changes_elem = ET.Element(m("Changes"))
    for change in chunk:
        try:
            where, msg = ctx.box.get(change.item_id)
            present = where.folder_id == folder.folder_id
        except KeyError:
            present = False
        if change.kind == "deleted" or not present:
            sub(sub(changes_elem, t("Delete")), t("ItemId"), Id=change.item_id)
            continue
        kind = "Create" if change.kind == "created" else "Update"
        sub(changes_elem, t(kind)).append(message_xml(message_view(where, msg), shape, False))
    reply = response_message("SyncFolderItems")
    sub(reply, m("SyncState"), new_token)
    sub(reply, m("IncludesLastItemInRange"), str(not rest).lower())
    reply.append(changes_elem)
    return [response("SyncFolderItems", [reply])]


def convert_id(ctx: EwsContext) -> list[ET.Element]:
    """ConvertId: ids are opaque here, so every id is reported malformed (clients use the
    call only to learn the server version from the response header)."""
    holder = ctx.request.find(m("SourceIds"))
    count = max(1, len(holder) if holder is not None else 0)
    return [
        response(
            "ConvertId",
            [
                response_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
                for _ in range(count)
            ],
        )
    ]
