"""EWS folder operations and the shared context of all operations, over the sandbox store.

Operations take an :class:`EwsContext` and return the elements of the SOAP body (one
``{Op}Response`` element). Per-item failures become ``ResponseClass="Error"`` messages, as in
Exchange; whole-request failures raise :class:`~mailgate.sandbox.ews.envelope.SoapError`, which
:mod:`mailgate.sandbox.ews.routes` renders as a fault. Folder ids: the store's ids, well-known names
through ``DistinguishedFolderId`` (inbox, deleteditems, sentitems, drafts, junkemail, archive,
plus ``msgfolderroot`` and ``root``, which the store does not hold and we synthesise).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailgate.sandbox.ews.envelope import SoapError, m, response, response_message, sub, t
from mailgate.sandbox.ews.render import folder_xml
from mailgate.sandbox.ews.restriction import parse_page_view
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import MailAccess
from mailgate.sandbox.exchange.store import StoredFolder, StoredMailbox
from mailgate.sandbox.graph.delta import DeltaTokens
from mailgate.sandbox.graph.ops import root_folder_id
from mailgate.sandbox.graph.resources import FolderView

__all__ = [
    "FOLDER_NOT_FOUND",
    "EwsContext",
    "FolderRef",
    "Operation",
    "create_folder",
    "find_folder",
    "folder_ref",
    "get_folder",
    "mailbox_of",
]

FOLDER_NOT_FOUND = "The specified folder could not be found in the store."


@dataclass
class EwsContext:
    """One authorised EWS request against one mailbox."""

    mail: SandboxMail
    access: MailAccess
    box: StoredMailbox
    request: ET.Element
    sync: DeltaTokens
    now: datetime


@dataclass(frozen=True)
class FolderRef:
    """A resolved folder: a stored one, or the synthetic root / msgfolderroot."""

    folder: StoredFolder | None
    synthetic: str = ""  # "root", "msgfolderroot"... when folder is None

    @property
    def store_id(self) -> str:
        """The store id (synthetic folders hold no items and have none)."""
        return self.folder.folder_id if self.folder else ""


def _root_ids(box: StoredMailbox) -> dict[str, str]:
    top = root_folder_id(box)
    # Recoverable Items/Deletions exists so clients that look it up after a SoftDelete
    # (exchangelib does) find it; the sandbox's soft deletes go to Deleted Items instead.
    return {
        "msgfolderroot": top,
        "root": top + "-root",
        "recoverableitemsdeletions": top + "-rid",
    }


def mailbox_of(operation: ET.Element) -> str | None:
    """The first ``t:Mailbox/t:EmailAddress`` a request names (delegated shared-mailbox use)."""
    found = operation.find(f".//{t('DistinguishedFolderId')}/{t('Mailbox')}/{t('EmailAddress')}")
    return (found.text or "").strip() or None if found is not None else None


def folder_ref(ctx: EwsContext, elem: ET.Element) -> FolderRef:
    """Resolve a ``t:FolderId`` or ``t:DistinguishedFolderId``; KeyError if unknown."""
    key = elem.get("Id", "")
    ids = _root_ids(ctx.box)
    local = elem.tag.rpartition("}")[2]
    if local == "DistinguishedFolderId":
        owner = elem.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
        if owner and owner.strip().lower() != ctx.box.address.lower():
            raise KeyError(owner)
        if key in ids:
            return FolderRef(None, key)
    else:
        for name, synthetic_id in ids.items():
            if key == synthetic_id:
                return FolderRef(None, name)
    folder = ctx.box.folder(key)
    if local == "FolderId" and folder.folder_id != key:
        raise KeyError(key)  # a FolderId must be an id, not a name
    return FolderRef(folder)


def _view(ctx: EwsContext, ref: FolderRef, folders: list[StoredFolder]) -> FolderView:
    ids = _root_ids(ctx.box)
    if ref.folder is None:
        if ref.synthetic == "root":
            return FolderView(ids["root"], "", "", 1, 0, 0)
        if ref.synthetic == "recoverableitemsdeletions":
            return FolderView(ids[ref.synthetic], "Deletions", ids["root"], 0, 0, 0)
        top = sum(1 for f in folders if f.parent_id is None)
        return FolderView(ids["msgfolderroot"], "Top of Information Store", ids["root"], top, 0, 0)
    folder = ref.folder
    messages = ctx.box.messages(folder.folder_id)
    return FolderView(
        folder_id=folder.folder_id,
        display_name=folder.name.rpartition("/")[2],
        parent_id=folder.parent_id or ids["msgfolderroot"],
        child_count=sum(1 for f in folders if f.parent_id == folder.folder_id),
        unread=sum(1 for msg in messages if not msg.is_read),
        total=len(messages),
    )


def _children(ctx: EwsContext, ref: FolderRef, deep: bool) -> list[FolderRef]:
    folders = ctx.box.folders()
    if ref.folder is None and ref.synthetic == "root":
        top = [FolderRef(None, "msgfolderroot")]
        return top + (_children(ctx, top[0], True) if deep else [])
    parent = ref.store_id or None
    found: list[FolderRef] = []
    for folder in folders:
        if folder.parent_id == parent:
            found.append(FolderRef(folder))
            if deep:
                found.extend(_children(ctx, FolderRef(folder), True))
    return found


def _folder_ids(operation: ET.Element, container: str) -> list[ET.Element]:
    holder = operation.find(m(container))
    return list(holder) if holder is not None else []


def get_folder(ctx: EwsContext) -> list[ET.Element]:
    """GetFolder: one response message per requested folder."""
    folders = ctx.box.folders()
    messages = []
    for elem in _folder_ids(ctx.request, "FolderIds"):
        try:
            ref = folder_ref(ctx, elem)
        except KeyError:
            messages.append(response_message("GetFolder", "ErrorFolderNotFound", FOLDER_NOT_FOUND))
            continue
        holder = ET.Element(m("Folders"))
        holder.append(folder_xml(_view(ctx, ref, folders), with_class=ref.folder is not None))
        messages.append(response_message("GetFolder", children=[holder]))
    return [response("GetFolder", messages)]


def find_folder(ctx: EwsContext) -> list[ET.Element]:
    """FindFolder with Shallow or Deep traversal and optional IndexedPageFolderView."""
    deep = ctx.request.get("Traversal", "Shallow") == "Deep"
    view = parse_page_view(ctx.request)
    folders = ctx.box.folders()
    messages = []
    for elem in _folder_ids(ctx.request, "ParentFolderIds"):
        try:
            ref = folder_ref(ctx, elem)
        except KeyError:
            messages.append(response_message("FindFolder", "ErrorFolderNotFound", FOLDER_NOT_FOUND))
            continue
        found = _children(ctx, ref, deep)
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
        holder = sub(root, t("Folders"))
        for child in chunk:
            holder.append(folder_xml(_view(ctx, child, folders), with_class=True))
        messages.append(response_message("FindFolder", children=[root]))
    return [response("FindFolder", messages)]


def create_folder(ctx: EwsContext) -> list[ET.Element]:
    """CreateFolder under ParentFolderId; ErrorFolderExists if the name is taken."""
    parent_elems = _folder_ids(ctx.request, "ParentFolderId")
    if not parent_elems:
        raise SoapError("ErrorSchemaValidation", "CreateFolder needs a ParentFolderId.")
    try:
        parent = folder_ref(ctx, parent_elems[0])
    except KeyError:
        return [
            response(
                "CreateFolder",
                [response_message("CreateFolder", "ErrorFolderNotFound", FOLDER_NOT_FOUND)],
            )
        ]
    messages = []
    for new in _folder_ids(ctx.request, "Folders"):
        name = (new.findtext(t("DisplayName")) or "").strip()
        if not name or "/" in name:
            messages.append(
                response_message("CreateFolder", "ErrorInvalidFolderName", "Invalid folder name.")
            )
            continue
        try:
            created = ctx.box.create_folder(name, parent.store_id or None)
        except ValueError:
            messages.append(
                response_message(
                    "CreateFolder",
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                )
            )
            continue
        holder = ET.Element(m("Folders"))
        folder_elem = sub(holder, t("Folder"))
        sub(folder_elem, t("FolderId"), Id=created.folder_id, ChangeKey="AQAAABYAAAA=")
        messages.append(response_message("CreateFolder", children=[holder]))
    return [response("CreateFolder", messages)]


Operation = Callable[[EwsContext], list[ET.Element]]
