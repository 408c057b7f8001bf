"""Pure rendering of stored messages and folders as EWS ``t:Message`` and ``t:Folder``.

Items render in schema order; which properties appear follows the request's shape
(:class:`~mailgate.sandbox.ews.restriction.ItemShape`): ``IdOnly`` gives the ItemId plus any
``AdditionalProperties``, ``Default``/``AllProperties`` the common message properties.
MIME content is base64 of the stored bytes, as Exchange sends it.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime

from mailgate.sandbox.ews.envelope import sub, t
from mailgate.sandbox.ews.restriction import ItemShape
from mailgate.sandbox.graph.resources import (
    Address,
    FolderView,
    MessageView,
    ParsedMail,
    html_text,
    parse_mail,
)

__all__ = ["FOLDER_CHANGE_KEY", "ews_datetime", "folder_xml", "item_id_xml", "message_xml"]

FOLDER_CHANGE_KEY = "AQAAABYAAAA="

# Properties Default/AllProperties shapes return, in the order of the EWS schema.
_DEFAULT = (
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Sensitivity",
    "item:Body",
    "item:DateTimeReceived",
    "item:Size",
    "item:Importance",
    "item:HasAttachments",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:DisplayCc",
    "item:DisplayTo",
    "message:Sender",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:ConversationTopic",
    "message:From",
    "message:InternetMessageId",
    "message:IsRead",
)


def ews_datetime(value: datetime) -> str:
    """``2026-11-01T08:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mailbox(parent: ET.Element, address: Address) -> None:
    box = sub(parent, t("Mailbox"))
    sub(box, t("Name"), address.name or address.address)
    sub(box, t("EmailAddress"), address.address)
    sub(box, t("RoutingType"), "SMTP")
    sub(box, t("MailboxType"), "OneOff")


def _one(tag: str) -> Callable[[ET.Element, MessageView, ParsedMail, ItemShape], None]:
    def render(parent: ET.Element, view: MessageView, mail: ParsedMail, shape: ItemShape) -> None:
        who = mail.sender if tag == "Sender" else mail.from_
        if who is not None:
            _mailbox(sub(parent, t(tag)), who)

    return render


def _many(tag: str) -> Callable[[ET.Element, MessageView, ParsedMail, ItemShape], None]:
    def render(parent: ET.Element, view: MessageView, mail: ParsedMail, shape: ItemShape) -> None:
        found = {"ToRecipients": mail.to, "CcRecipients": mail.cc, "BccRecipients": mail.bcc}[tag]
        if found:
            holder = sub(parent, t(tag))
            for address in found:
                _mailbox(holder, address)

    return render


def _text(
    tag: str, value: Callable[[MessageView, ParsedMail], str]
) -> Callable[[ET.Element, MessageView, ParsedMail, ItemShape], None]:
    def render(parent: ET.Element, view: MessageView, mail: ParsedMail, shape: ItemShape) -> None:
        sub(parent, t(tag), value(view, mail))

    return render


def _body(parent: ET.Element, view: MessageView, mail: ParsedMail, shape: ItemShape) -> None:
    html = mail.body_type == "html"
    if shape.body_type == "Text" and html:
        sub(parent, t("Body"), html_text(mail.body), BodyType="Text")
    else:
        sub(parent, t("Body"), mail.body, BodyType="HTML" if html else "Text")


def _parent(parent: ET.Element, view: MessageView, mail: ParsedMail, shape: ItemShape) -> None:
    sub(parent, t("ParentFolderId"), Id=view.folder_id, ChangeKey=FOLDER_CHANGE_KEY)


def _display(addresses: tuple[Address, ...]) -> str:
    return "; ".join(a.name or a.address for a in addresses)


def _sent(view: MessageView, mail: ParsedMail) -> str:
    return ews_datetime(mail.sent or view.received)


_RENDER: dict[str, Callable[[ET.Element, MessageView, ParsedMail, ItemShape], None]] = {
    "item:parentfolderid": _parent,
    "item:itemclass": _text("ItemClass", lambda v, p: "IPM.Note"),
    "item:subject": _text("Subject", lambda v, p: p.subject),
    "item:sensitivity": _text("Sensitivity", lambda v, p: "Normal"),
    "item:body": _body,
    "item:datetimereceived": _text("DateTimeReceived", lambda v, p: ews_datetime(v.received)),
    "item:size": _text("Size", lambda v, p: str(len(v.raw))),
    "item:importance": _text("Importance", lambda v, p: "Normal"),
    "item:hasattachments": _text("HasAttachments", lambda v, p: str(p.has_attachments).lower()),
    "item:datetimesent": _text("DateTimeSent", _sent),
    "item:datetimecreated": _text("DateTimeCreated", lambda v, p: ews_datetime(v.received)),
    "item:lastmodifiedtime": _text("LastModifiedTime", lambda v, p: ews_datetime(v.received)),
    "item:displaycc": _text("DisplayCc", lambda v, p: _display(p.cc)),
    "item:displayto": _text("DisplayTo", lambda v, p: _display(p.to)),
    "message:sender": _one("Sender"),
    "message:torecipients": _many("ToRecipients"),
    "message:ccrecipients": _many("CcRecipients"),
    "message:bccrecipients": _many("BccRecipients"),
    "message:conversationtopic": _text("ConversationTopic", lambda v, p: p.subject),
    "message:from": _one("From"),
    "message:internetmessageid": _text("InternetMessageId", lambda v, p: p.message_id),
    "message:isread": _text("IsRead", lambda v, p: str(v.is_read).lower()),
}
_ORDER = [
    "item:parentfolderid",
    "item:itemclass",
    "item:subject",
    "item:sensitivity",
    "item:body",
    "item:datetimereceived",
    "item:size",
    "item:importance",
    "item:hasattachments",
    "item:datetimesent",
    "item:datetimecreated",
    "item:lastmodifiedtime",
    "item:displaycc",
    "item:displayto",
    "message:sender",
    "message:torecipients",
    "message:ccrecipients",
    "message:bccrecipients",
    "message:conversationtopic",
    "message:from",
    "message:internetmessageid",
    "message:isread",
]


def item_id_xml(parent: ET.Element, view: MessageView) -> ET.Element:
    """``<t:ItemId Id=… ChangeKey=…/>``."""
    return sub(parent, t("ItemId"), Id=view.item_id, ChangeKey=view.change_key)


def message_xml(view: MessageView, shape: ItemShape, with_body: bool = True) -> ET.Element:
    """A ``t:Message`` for ``view`` in ``shape``; ``with_body`` is False for FindItem, whose
    Default shape leaves the body out, as Exchange's does."""
    elem = ET.Element(t("Message"))
    if shape.include_mime:
        sub(elem, t("MimeContent"), base64.b64encode(view.raw).decode(), CharacterSet="UTF-8")
    item_id_xml(elem, view)
    wanted = set(shape.fields)
    if shape.base != "IdOnly":
        wanted.update(f.lower() for f in _DEFAULT if with_body or f != "item:Body")
    mail = parse_mail(view.raw)
    for field in _ORDER:
        if field in wanted:
            _RENDER[field](elem, view, mail, shape)
    return elem


def folder_xml(view: FolderView, tag: str = "Folder", with_class: bool = True) -> ET.Element:
    """A ``t:Folder`` with id, parent, class, name and counts."""
    elem = ET.Element(t(tag))
    sub(elem, t("FolderId"), Id=view.folder_id, ChangeKey=FOLDER_CHANGE_KEY)
    if view.parent_id:
        sub(elem, t("ParentFolderId"), Id=view.parent_id, ChangeKey=FOLDER_CHANGE_KEY)
    if with_class:
        sub(elem, t("FolderClass"), "IPF.Note")
    sub(elem, t("DisplayName"), view.display_name)
    sub(elem, t("TotalCount"), str(view.total))
    sub(elem, t("ChildFolderCount"), str(view.child_count))
    sub(elem, t("UnreadCount"), str(view.unread))
    return elem
