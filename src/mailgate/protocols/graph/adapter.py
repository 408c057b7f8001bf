"""The Microsoft Graph mail adapter: thin I/O around :mod:`mailgate.protocols.graph.shapes`.

Every call goes to ``{base_url}/users/{address}/...`` with a bearer token for
``https://graph.microsoft.com``, so the same code serves app-only tokens and delegated ones
(own or shared mailbox). Folder arguments are Graph well-known names (``inbox``,
``deleteditems``...) or display paths (``Inbox/Invoices``), resolved to ids once per
connection. Message ids change when a message moves; :meth:`GraphMailbox.move` returns the new
ones.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any, BinaryIO, ClassVar
from urllib.parse import quote

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
    UnsupportedOperation,
)
from mailgate.protocols.graph import shapes as gj
from mailgate.protocols.transport import (
    add_envelope_bcc,
    require_same_origin,
    stream,
    submission,
    transport_errors,
)

__all__ = ["CONCURRENCY", "PAGE_SIZE", "GraphMailbox"]

PAGE_SIZE = 100
CONCURRENCY = 4  # Outlook's limit of concurrent requests per app and mailbox


class GraphMailbox(HttpMailbox):
    """One mailbox over Microsoft Graph (``/users/{address}/messages``, ``mailFolders``)."""

    protocol: ClassVar[Protocol] = Protocol.GRAPH
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)
    reports_sizes: ClassVar[bool] = False  # a Graph message has no size property

    def __init__(
        self,
        address: str,
        base_url: str = "https://graph.microsoft.com/v1.0",
        *,
        token_source: TokenSource,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            address,
            token_source=token_source,
            ssl_context=ssl_context,
            timeout=timeout,
            transport=transport,
        )
        self.base_url = base_url.rstrip("/")
        self._folders: list[gj.GraphFolder] | None = None
        self._paths: dict[str, str] = {}  # folder id -> display path
        self._user = f"/users/{quote(address, safe='@')}"

    def __repr__(self) -> str:
        return f"GraphMailbox({self.address!r}, {self.base_url!r})"

    # -- connection ----------------------------------------------------------------------------

    def _client_options(self) -> tuple[str, dict[str, str]]:
        return self.base_url, {"Accept": "application/json"}

    async def _probe(self) -> None:
        """Read the Inbox folder's id."""
        await self._json("GET", f"{self._user}/mailFolders/inbox", "connect", {"$select": "id"})

    def _forget(self) -> None:
        self._folders = None

    async def _call(
        self,
        method: str,
        url: str,
        action: str,
        *,
        params: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        with transport_errors():
            response = await self.client.request(method, url, params=params, **kwargs)
        if response.status_code not in expect:
            raise gj.error_from_response(
                response.status_code,
                response.headers,
                response.content,
                mailbox=self.address,
                action=action,
            )
        return response

    async def _json(
        self, method: str, url: str, action: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self._call(method, url, action, params=params)
        try:
            data = response.json()
        except ValueError as exc:
            raise ProtocolError(
                f"Graph {action} returned no JSON.", "check the base URL points at Graph."
            ) from exc
        if not isinstance(data, dict):
            raise ProtocolError(f"Graph {action} returned unexpected JSON.", "report this reply.")
        return data

    async def _pages(
        self, url: str, action: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[gj.Page]:
        """Every page of a collection, following ``@odata.nextLink`` as given if it stays on
        the mailbox's host (the token goes with it)."""
        next_url: str | None = url
        while next_url is not None:
            page = gj.parse_page(await self._json("GET", next_url, action, params))
            yield page
            next_url, params = page.next_link, None
            if next_url is not None:
                require_same_origin(next_url, self.base_url)

    def _message(self, ref: MessageRef) -> str:
        return f"{self._user}/messages/{quote(ref.id, safe='')}"

    # -- folders -------------------------------------------------------------------------------

    async def _load_folders(self) -> list[gj.GraphFolder]:
        if self._folders is not None:
            return self._folders
        found: list[gj.GraphFolder] = []
        pending = [f"{self._user}/mailFolders"]
        while pending:
            url = pending.pop()
            async for page in self._pages(url, "list folders", {"$top": str(PAGE_SIZE)}):
                for item in page.values:
                    folder = gj.parse_folder(item)
                    found.append(folder)
                    if folder.child_count:
                        pending.append(
                            f"{self._user}/mailFolders/{quote(folder.id, safe='')}/childFolders"
                        )
        by_id = {f.id: f for f in found}

        def path(folder: gj.GraphFolder) -> str:
            parent = by_id.get(folder.parent_id or "")
            return f"{path(parent)}/{folder.display_name}" if parent else folder.display_name

        self._paths = {f.id: path(f) for f in found}
        self._folders = found
        return found

    async def _well_known_ids(self) -> dict[str, str]:
        """Folder id -> well-known name, asking Graph for names it did not label."""
        folders = await self._load_folders()
        known = {f.id: f.well_known for f in folders if f.well_known}
        missing = [n for n in gj.WELL_KNOWN_FOLDERS if n not in known.values()]

        async def lookup(name: str) -> tuple[str, str] | None:
            try:
                data = await self._json(
                    "GET", f"{self._user}/mailFolders/{name}", "list folders", {"$select": "id"}
                )
            except gj.GraphError as exc:
                if exc.status == 404:  # e.g. no Archive folder in this mailbox
                    return None
                raise
            return str(data.get("id")), name

        for found in await asyncio.gather(*(lookup(n) for n in missing)):
            if found is not None:
                known[found[0]] = found[1]
        return known

    async def list_folders(self) -> list[Folder]:
        """All folders with ``/``-separated display paths; well-known ones carry special-use."""
        self._folders = None
        folders = await self._load_folders()
        well_known = await self._well_known_ids()
        result = []
        for folder in folders:
            name = well_known.get(folder.id)
            result.append(
                Folder(
                    name=self._paths[folder.id],
                    id=folder.id,
                    special_use=gj.WELL_KNOWN_FOLDERS[name] if name else None,
                    total=folder.total,
                    unread=folder.unread,
                )
            )
        return sorted(result, key=lambda f: f.name.lower())

    async def _folder_id(self, folder: str) -> str:
        well_known = gj.well_known_name(folder)
        if well_known is not None:
            return well_known
        wanted = folder.strip("/").lower()
        await self._load_folders()
        for folder_id, path in self._paths.items():
            if path.lower() == wanted or folder_id == folder:
                return folder_id
        known = ", ".join(sorted(self._paths.values())) or "none"
        raise ConfigurationError(
            f"No folder {folder!r} in {self.address} (Graph).",
            f"use a display path such as 'Inbox/Invoices' or a well-known name; folders: {known}.",
        )

    async def create_folder(self, name: str) -> None:
        """``POST mailFolders`` (or the parent's ``childFolders``) unless the path exists."""
        path = name.strip("/")
        try:
            await self._folder_id(path)
            return
        except ConfigurationError:
            pass
        parent, _, leaf = path.rpartition("/")
        url = f"{self._user}/mailFolders"
        if parent:
            url += f"/{quote(await self._folder_id(parent), safe='')}/childFolders"
        await self._call(
            "POST", url, "create folder", json={"displayName": leaf}, expect=(200, 201)
        )
        self._folders = None  # the next lookup sees the new folder

    # -- reading -------------------------------------------------------------------------------

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        """Matching messages, oldest first (at most ``limit``, the oldest ones)."""
        folder_id = await self._folder_id(folder)
        url = f"{self._user}/mailFolders/{quote(folder_id, safe='')}/messages"
        params = gj.search_params(criteria, min(limit or PAGE_SIZE, 1000))
        found: list[tuple[str, str]] = []
        async for page in self._pages(url, "search", params):
            found.extend((str(m.get("receivedDateTime") or ""), str(m["id"])) for m in page.values)
            if limit is not None and len(found) >= limit:
                break
        found.sort(key=lambda item: item[0])  # stable: server order breaks ties
        if limit is not None:
            found = found[:limit]
        return [MessageRef(folder, message_id) for _, message_id in found]

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(ref: MessageRef) -> MessageSummary:
            async with gate:
                data = await self._json(
                    "GET", self._message(ref), "fetch headers", {"$select": gj.HEADER_FIELDS}
                )
            return gj.parse_summary(data, ref.folder)

        return list(await asyncio.gather(*(one(ref) for ref in refs)))

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        """Stream ``/$value`` (RFC 822) into ``dest`` chunk by chunk."""
        written = 0
        async with stream(self.client, "GET", f"{self._message(ref)}/$value") as response:
            if response.status_code != 200:
                body = await response.aread()
                raise gj.error_from_response(
                    response.status_code,
                    response.headers,
                    body,
                    mailbox=self.address,
                    action="fetch message",
                )
            async for chunk in response.aiter_bytes():
                dest.write(chunk)
                written += len(chunk)
        return written

    # -- changing ------------------------------------------------------------------------------

    async def set_flags(
        self, refs: Sequence[MessageRef], *, seen: bool | None = None, flagged: bool | None = None
    ) -> None:
        patch: dict[str, Any] = {}
        if seen is not None:
            patch["isRead"] = seen
        if flagged is not None:
            patch["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}
        if not patch:
            return
        for ref in refs:
            await self._call("PATCH", self._message(ref), "set flags", json=patch)

    async def move(self, refs: Sequence[MessageRef], folder: str) -> list[MessageRef | None]:
        destination = await self._folder_id(folder)
        moved: list[MessageRef | None] = []
        for ref in refs:
            response = await self._call(
                "POST",
                f"{self._message(ref)}/move",
                "move",
                json={"destinationId": destination},
                expect=(200, 201),
            )
            data = response.json()
            new_id = data.get("id") if isinstance(data, dict) else None
            moved.append(MessageRef(folder, new_id, data.get("changeKey")) if new_id else None)
        return moved

    async def delete(self, refs: Sequence[MessageRef]) -> None:
        """``DELETE``: Graph moves the message to Deleted Items."""
        for ref in refs:
            await self._call("DELETE", self._message(ref), "delete", expect=(200, 204))

    async def delete_permanently(self, refs: Sequence[MessageRef]) -> None:
        """``permanentDelete``: gone for good (to the Purges folder, not Deleted Items)."""
        for ref in refs:
            await self._call(
                "POST", f"{self._message(ref)}/permanentDelete", "delete", expect=(200, 204)
            )

    async def append(self, folder: str, mime: bytes, *, seen: bool = False) -> MessageRef | None:
        """Create a message from MIME in ``folder`` (Graph marks such messages as drafts)."""
        folder_id = await self._folder_id(folder)
        try:
            response = await self._call(
                "POST",
                f"{self._user}/mailFolders/{quote(folder_id, safe='')}/messages",
                "append",
                content=base64.b64encode(mime),
                headers={"Content-Type": "text/plain"},
                expect=(200, 201),
            )
        except gj.GraphError as exc:
            # Graph creates messages from MIME on /messages; a server that only takes JSON
            # there answers 400/415, and JSON would not preserve the message byte for byte.
            if exc.status in (400, 405, 415, 501):
                raise UnsupportedOperation(
                    self.protocol,
                    Operation.APPEND,
                    f"this Graph endpoint cannot create messages from MIME ({exc.message}); "
                    "use IMAP APPEND or EWS CreateItem for the mailbox.",
                ) from exc
            raise
        data = response.json()
        ref = MessageRef(folder, str(data["id"]), data.get("changeKey"))
        if seen:
            await self.set_flags([ref], seen=True)
        return ref

    async def send(self, mime: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """``sendMail`` with the base64 MIME; recipients come from its headers (see
        :func:`~mailgate.protocols.transport.add_envelope_bcc`), a copy goes to Sent Items."""
        body = base64.b64encode(add_envelope_bcc(mime, recipients))
        with submission("Microsoft Graph"):
            await self._call(
                "POST",
                f"{self._user}/sendMail",
                "send",
                content=body,
                headers={"Content-Type": "text/plain"},
                expect=(202,),
            )

    # -- watching ------------------------------------------------------------------------------

    async def _delta(
        self, url: str, params: dict[str, str] | None
    ) -> tuple[set[str], set[str], str]:
        """Follow a delta round to its deltaLink: (changed ids, removed ids, deltaLink)."""
        changed: set[str] = set()
        removed: set[str] = set()
        async for page in self._pages(url, "watch", params):
            for item in page.values:
                target = removed if "@removed" in item else changed
                target.add(str(item.get("id")))
            if page.delta_link is not None:
                return changed, removed, require_same_origin(page.delta_link, self.base_url)
        raise ProtocolError("Graph ended a delta query without a deltaLink.", "report this reply.")

    async def watch(
        self, folder: str, *, interval: float = 30.0
    ) -> AsyncIterator[list[MessageRef]]:
        """Poll the folder's message delta every ``interval`` s; yield refs of new messages.

        The first round only records what is there. Graph's delta does not say "created" vs
        "updated", so new means "an id not seen before"; on ``410 Gone`` the state is rebuilt
        and ids not seen before are reported.
        """
        folder_id = await self._folder_id(folder)
        start = f"{self._user}/mailFolders/{quote(folder_id, safe='')}/messages/delta"
        params = {"$select": "id"}
        known, _, link = await self._delta(start, params)
        while True:
            await self.sleep(interval)
            try:
                changed, removed, link = await self._delta(link, None)
            except gj.GraphError as exc:
                if exc.status != 410:
                    raise
                changed, _, link = await self._delta(start, params)
                removed = known - changed
            new = sorted(changed - known)
            known = (known | changed) - removed
            if new:
                yield [MessageRef(folder, message_id) for message_id in new]
