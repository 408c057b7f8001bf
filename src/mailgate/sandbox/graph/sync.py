"""Graph's message delta query over the store's change log (``…/messages/delta``).

The first call (no token) reports everything in the folder as created; pages follow through
``$skiptoken`` links and the last page carries a ``$deltatoken`` link. Calling that later
reports only what changed since, with removed or moved-out items as ``@removed``. Tokens are
kept by :class:`~mailgate.sandbox.graph.delta.DeltaTokens`; an unknown one answers 410.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from mailgate.sandbox.graph.delta import DeltaState, page_size
from mailgate.sandbox.graph.ops import GraphContext, GraphError, folder_of, message_view
from mailgate.sandbox.graph.query import parse_select
from mailgate.sandbox.graph.resources import message_json, project

__all__ = ["delta"]


def _gone() -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found or has expired. Resync the folder without"
        " a deltatoken.",
    )


def delta(ctx: GraphContext) -> Response:
    """``GET mailFolders/{f}/messages/delta``: pages of changes, then a deltaLink."""
    folder = folder_of(ctx, ctx.path["folder"])
    params = dict(ctx.params)
    mailbox = ctx.box.address.lower()
    if "$skiptoken" in params or "$deltatoken" in params:
        token = params.get("$skiptoken") or params["$deltatoken"]
        state = ctx.delta.redeem(token, mailbox, folder.folder_id)
        if state is None:
            raise _gone()
    else:
        state = DeltaState(mailbox, folder.folder_id, 0, None, params.get("$select"))
    if state.pending is None:
        changes, sync = ctx.box.changes(folder.folder_id, state.sync)
        state = DeltaState(mailbox, folder.folder_id, sync, tuple(changes), state.select)
    assert state.pending is not None
    size = page_size(ctx.headers.get("prefer"))
    chunk, rest = state.pending[:size], state.pending[size:]
    select = parse_select(state.select) if state.select else None
    value: list[dict[str, Any]] = []
    for change in chunk:
        try:
            where, msg = ctx.box.get(change.item_id)
            present = where.folder_id == folder.folder_id
        except KeyError:
            present = False
        if change.kind == "deleted" or not present:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": change.item_id,
                    "@removed": {"reason": "deleted"},
                }
            )
        else:
            value.append(project(message_json(message_view(where, msg), ctx.base_url), select))
    body: dict[str, Any] = {"@odata.context": ctx.context("messages/$delta"), "value": value}
    if rest:
        token = ctx.delta.issue(
            DeltaState(mailbox, folder.folder_id, state.sync, rest, state.select)
        )
        body["@odata.nextLink"] = f"{ctx.url}?$skiptoken={token}"
    else:
        token = ctx.delta.issue(
            DeltaState(mailbox, folder.folder_id, state.sync, None, state.select)
        )
        body["@odata.deltaLink"] = f"{ctx.url}?$deltatoken={token}"
    return JSONResponse(body)
