"""The EWS adapter: thin I/O around :mod:`~mailgate.protocols.ews.soap` (requests) and
:mod:`~mailgate.protocols.ews.replies` (replies).

App-only access (``full_access_as_app``) impersonates the mailbox in every request;
delegated access (``EWS.AccessAsUser.All``) names a shared mailbox inside each distinguished
folder id. Both send ``X-AnchorMailbox`` (required with impersonation; routes delegated
requests whose only ids are FolderIds/ItemIds). Folder arguments are EWS distinguished
names (``inbox``, ``deleteditems``...) or display paths (``Inbox/Invoices``), resolved once per
connection. ``MessageRef.id`` is the ItemId, ``change_key`` its ChangeKey.
"""

from __future__ import annotations

import base64
import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import BinaryIO, ClassVar

import httpx

from mailgate.errors import ConfigurationError, ProtocolError
from mailgate.protocols._http_mailbox import HttpMailbox
from mailgate.protocols.base import (
    Folder,
    MessageRef,
    MessageSummary,
    Operation,
    Protocol,
    SearchCriteria,
    TokenSource,
)
from mailgate.protocols.ews import replies as reply
from mailgate.protocols.ews import soap as soap
from mailgate.protocols.graph.shapes import WELL_KNOWN_FOLDERS, well_known_name
from mailgate.protocols.transport import add_envelope_bcc, stream, submission, transport_errors

__all__ = ["BATCH", "PAGE_SIZE", "EwsMailbox"]

PAGE_SIZE = 100
BATCH = 50  # item ids per GetItem/UpdateItem/MoveItem/DeleteItem request
_DISTINGUISHED = ("inbox", "deleteditems", "sentitems", "drafts", "junkemail")


class EwsMailbox(HttpMailbox):
    """One mailbox over Exchange Web Services with an OAuth bearer token."""

    protocol: ClassVar[Protocol] = Protocol.EWS
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)

    def __init__(
        self,
        address: str,
        url: str = "https://outlook.office365.com/EWS/Exchange.asmx",
        *,
        token_source: TokenSource,
        app_only: bool,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        server_version: str = "Exchange2013_SP1",
    ) -> None:
        super().__init__(
            address,
            token_source=token_source,
            ssl_context=ssl_context,
            timeout=timeout,
            transport=transport,
        )
        self.url = url
        self.app_only = app_only
        self.server_version = server_version
        self._paths: dict[str, str] | None = None  # folder id -> display path
        self._counts: dict[str, tuple[int | None, int | None]] = {}

    def __repr__(self) -> str:
        mode = "app-only" if self.app_only else "delegated"
        return f"EwsMailbox({self.address!r}, {self.url!r}, {mode})"

    # -- connection ----------------------------------------------------------------------------

    def _client_options(self) -> tuple[str, dict[str, str]]:
        # X-AnchorMailbox is mandatory with impersonation, and routes delegated requests
        # to a shared mailbox whose FolderIds/ItemIds carry no mailbox name.
        return "", {
            "Content-Type": "text/xml; charset=utf-8",
            "Accept": "text/xml",
            "X-AnchorMailbox": self.address,
        }

    async def _probe(self) -> None:
        """GetFolder on the Inbox."""
        await self._call(soap.get_folder([self._target("inbox")]), "connect")

    def _forget(self) -> None:
        self._paths = None

    def _envelope(self, body: str) -> bytes:
        return soap.envelope(
            body,
            version=self.server_version,
            impersonate=self.address if self.app_only else None,
        )

    async def _call(self, body: str, action: str) -> list[ET.Element]:
        with transport_errors():
            response = await self.client.post(self.url, content=self._envelope(body))
        if response.status_code != 200:
            raise reply.error_from_http(
                response.status_code,
                response.headers,
                response.content,
                mailbox=self.address,
                app_only=self.app_only,
            )
        return reply.response_messages(
            response.content, mailbox=self.address, app_only=self.app_only
        )

    async def _batched(
        self, refs: Sequence[MessageRef], build: Callable[[Sequence[MessageRef]], str], action: str
    ) -> list[ET.Element]:
        messages: list[ET.Element] = []
        for start in range(0, len(refs), BATCH):
            messages += await self._call(build(refs[start : start + BATCH]), action)
        return messages

    # -- folders -------------------------------------------------------------------------------

    def _target(self, name: str, *, distinguished: bool = True) -> soap.FolderTarget:
        mailbox = None if self.app_only or not distinguished else self.address
        return soap.FolderTarget(name, distinguished=distinguished, mailbox=mailbox)

    async def _load_paths(self) -> dict[str, str]:
        if self._paths is not None:
            return self._paths
        found: list[reply.EwsFolder] = []
        offset: int | None = 0
        while offset is not None:
            messages = await self._call(
                soap.find_folder(self._target("msgfolderroot"), offset), "list folders"
            )
            page, offset = reply.parse_folders(messages)
            found += page
        mail = [
            f
            for f in found
            if f.folder_class in (None, "") or f.folder_class.startswith("IPF.Note")
        ]
        by_id = {f.id: f for f in mail}

        def path(folder: reply.EwsFolder) -> str:
            parent = by_id.get(folder.parent_id or "")
            return f"{path(parent)}/{folder.display_name}" if parent else folder.display_name

        self._paths = {f.id: path(f) for f in mail}
        self._counts = {f.id: (f.total, f.unread) for f in mail}
        return self._paths

    async def list_folders(self) -> list[Folder]:
        """Mail folders under the top of the information store, with ``/`` paths."""
        self._paths = None
        paths = await self._load_paths()
        targets = [self._target(name) for name in _DISTINGUISHED]
        ids = reply.parse_folder_ids(await self._call(soap.get_folder(targets), "list folders"))
        special = {
            fid: WELL_KNOWN_FOLDERS[n] for n, fid in zip(_DISTINGUISHED, ids, strict=False) if fid
        }
        folders = [
            Folder(
                name=path,
                id=fid,
                special_use=special.get(fid),
                total=self._counts[fid][0],
                unread=self._counts[fid][1],
            )
            for fid, path in paths.items()
        ]
        return sorted(folders, key=lambda f: f.name.lower())

    async def _folder(self, folder: str) -> soap.FolderTarget:
        name = well_known_name(folder)
        if name in _DISTINGUISHED:
            return self._target(name)
        wanted = folder.strip("/").lower()
        paths = await self._load_paths()
        for folder_id, path in paths.items():
            if path.lower() == wanted or folder_id == folder:
                return self._target(folder_id, distinguished=False)
        known = ", ".join(sorted(paths.values())) or "none"
        raise ConfigurationError(
            f"No folder {folder!r} in {self.address} (EWS).",
            "use a display path such as 'Inbox/Invoices' or a distinguished name; "
            f"folders: {known}.",
        )

    async def create_folder(self, name: str) -> None:
        """CreateFolder under the parent path (or the top of the store) unless it exists."""
        path = name.strip("/")
        try:
            await self._folder(path)
            return
        except ConfigurationError:
            pass
        parent_path, _, leaf = path.rpartition("/")
        parent = await self._folder(parent_path) if parent_path else self._target("msgfolderroot")
        await self._call(soap.create_folder(parent, leaf), "create folder")
        self._paths = None  # the next lookup sees the new folder

    # -- reading -------------------------------------------------------------------------------

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        """FindItem with a Restriction, paged with IndexedPageItemView, oldest first."""
        target = await self._folder(folder)
        refs: list[MessageRef] = []
        offset: int | None = 0
        while offset is not None and (limit is None or len(refs) < limit):
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(refs))
            messages = await self._call(soap.find_item(target, criteria, offset, size), "search")
            page = reply.parse_found_items(messages)
            refs += [MessageRef(folder, item_id, key) for item_id, key, _ in page.items]
            offset = page.next_offset if page.items else None
        return refs if limit is None else refs[:limit]

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        messages = await self._batched(refs, soap.get_item, "fetch headers")
        summaries = reply.parse_summaries(messages, "")
        if len(summaries) != len(refs):
            raise ProtocolError("EWS GetItem returned a different number of items.", "retry.")
        return [
            replace(s, ref=replace(s.ref, folder=r.folder))
            for s, r in zip(summaries, refs, strict=True)
        ]

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        """GetItem with MimeContent, decoded from base64 into ``dest`` as it streams in."""
        body = self._envelope(soap.get_item([ref], mime=True))
        async with stream(self.client, "POST", self.url, content=body) as response:
            if response.status_code != 200:
                raise reply.error_from_http(
                    response.status_code,
                    response.headers,
                    await response.aread(),
                    mailbox=self.address,
                    app_only=self.app_only,
                )
            decoder = reply.MimeStreamDecoder(dest, mailbox=self.address, app_only=self.app_only)
            async for chunk in response.aiter_bytes():
                decoder.feed(chunk)
            return decoder.close()

    # -- changing ------------------------------------------------------------------------------

    async def set_flags(
        self, refs: Sequence[MessageRef], *, seen: bool | None = None, flagged: bool | None = None
    ) -> None:
        if seen is None and flagged is None:
            return
        await self._batched(
            refs, lambda part: soap.update_item(part, seen=seen, flagged=flagged), "set flags"
        )

    async def move(self, refs: Sequence[MessageRef], folder: str) -> list[MessageRef | None]:
        """MoveItem; returns the new ItemIds Exchange assigns in the destination."""
        target = await self._folder(folder)
        messages = await self._batched(refs, lambda part: soap.move_item(part, target), "move")
        return [
            MessageRef(folder, new[0], new[1]) if new else None
            for new in reply.parse_item_ids(messages)
        ]

    async def delete(self, refs: Sequence[MessageRef]) -> None:
        """DeleteItem ``MoveToDeletedItems``."""
        await self._batched(refs, lambda part: soap.delete_item(part, hard=False), "delete")

    async def delete_permanently(self, refs: Sequence[MessageRef]) -> None:
        """DeleteItem ``HardDelete``."""
        await self._batched(refs, lambda part: soap.delete_item(part, hard=True), "delete")

    async def append(self, folder: str, mime: bytes, *, seen: bool = False) -> MessageRef | None:
        """CreateItem ``SaveOnly`` with the MIME into ``folder``."""
        target = await self._folder(folder)
        body = soap.create_item(
            base64.b64encode(mime).decode("ascii"), target, send=False, seen=seen
        )
        ids = reply.parse_item_ids(await self._call(body, "append"))
        new = ids[0] if ids else None
        return MessageRef(folder, new[0], new[1]) if new else None

    async def send(self, mime: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """CreateItem ``SendAndSaveCopy``; recipients come from the MIME headers (envelope
        recipients missing there are added as Bcc), the copy goes to Sent Items."""
        encoded = base64.b64encode(add_envelope_bcc(mime, recipients)).decode("ascii")
        with submission("EWS"):
            await self._call(
                soap.create_item(encoded, self._target("sentitems"), send=True), "send"
            )

    # -- watching ------------------------------------------------------------------------------

    async def _sync(
        self, target: soap.FolderTarget, state: str | None
    ) -> tuple[list[MessageRef], str]:
        """SyncFolderItems until the last page: (created refs, new state)."""
        created: list[MessageRef] = []
        while True:
            changes = reply.parse_sync(
                await self._call(soap.sync_folder_items(target, state), "watch")
            )
            state = changes.sync_state
            created += [MessageRef("", item_id, key) for item_id, key in changes.created]
            if changes.last:
                return created, state

    async def watch(
        self, folder: str, *, interval: float = 30.0
    ) -> AsyncIterator[list[MessageRef]]:
        """Poll SyncFolderItems every ``interval`` s; yield refs of items created since.

        The first sync only establishes the SyncState. If Exchange drops the state
        (``ErrorInvalidSyncStateData``) the folder is synced afresh, without re-reporting.
        """
        target = await self._folder(folder)
        _, state = await self._sync(target, None)
        while True:
            await self.sleep(interval)
            try:
                created, state = await self._sync(target, state)
            except reply.EwsError as exc:
                if exc.code != "ErrorInvalidSyncStateData":
                    raise
                _, state = await self._sync(target, None)
                continue
            if created:
                yield [replace(ref, folder=folder) for ref in created]
