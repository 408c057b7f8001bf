"""Graph mail on the running sandbox, driven by plain httpx as any Graph client would."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailgate.testing import SandboxController

from .conftest import DOMAIN, EXCHANGE_DEFAULT, SHARED, Tokens, mailbox, make_message, seed_folder

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning"),
]

USER = f"/users/{SHARED}"


def all_pages(client: httpx.Client, url: str, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow @odata.nextLink unchanged; returns the items and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        assert pages < 50, "nextLink never ends"
        # Query options go on the first request only; nextLink carries them from then on.
        answer = client.get(next_url, **(kwargs if pages == 0 else {}))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items.extend(body["value"])
        pages += 1
        next_url = body.get("@odata.nextLink")
        assert next_url is None or next_url.startswith("https://")
    return items, pages


def graph_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error


def test_folders_well_known_children_and_create(graph: httpx.Client) -> None:
    listed = graph.get(f"{USER}/mailFolders").json()["value"]
    names = {f["displayName"] for f in listed}
    assert {"Inbox", "Deleted Items", "Sent Items", "Drafts"} <= names
    inbox = graph.get(f"{USER}/mailFolders/inbox").json()
    assert inbox["displayName"] == "Inbox" and inbox["totalItemCount"] >= 3
    assert set(inbox) >= {
        "id",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
    }
    created = graph.post(f"{USER}/mailFolders/inbox/childFolders", json={"displayName": "Sub"})
    assert created.status_code == 201
    children = graph.get(f"{USER}/mailFolders/{inbox['id']}/childFolders").json()["value"]
    assert created.json()["id"] in [c["id"] for c in children]
    assert created.json()["parentFolderId"] == inbox["id"]
    again = graph.post(f"{USER}/mailFolders/inbox/childFolders", json={"displayName": "Sub"})
    graph_error(again, 409, "ErrorFolderExists")
    graph_error(graph.get(f"{USER}/mailFolders/nope"), 404, "ErrorItemNotFound")


def test_paging_follows_next_link(sandbox: SandboxController, graph: httpx.Client) -> None:
    folder = seed_folder(sandbox, 25)
    items, pages = all_pages(graph, f"{USER}/mailFolders/{folder.folder_id}/messages")
    assert pages == 3 and len({m["id"] for m in items}) == 25
    assert [m["subject"] for m in items[:2]] == ["Message 24", "Message 23"]  # newest first
    items, pages = all_pages(
        graph,
        f"{USER}/mailFolders/{folder.folder_id}/messages",
        params={"$top": "7", "$orderby": "receivedDateTime asc", "$select": "subject"},
    )
    assert pages == 4 and items[0]["subject"] == "Message 00"
    assert set(items[0]) == {"@odata.etag", "id", "subject"}


def test_filter_and_select(sandbox: SandboxController, graph: httpx.Client) -> None:
    folder = seed_folder(sandbox, 6, sender="vendor@vendor.example")
    url = f"{USER}/mailFolders/{folder.folder_id}/messages"
    unread = graph.get(url, params={"$filter": "isRead eq false"}).json()["value"]
    assert sorted(m["subject"] for m in unread) == ["Message 01", "Message 03", "Message 05"]
    assert all(m["isRead"] is False for m in unread)
    combined = graph.get(
        url,
        params={
            "$filter": "from/emailAddress/address eq 'vendor@vendor.example' and "
            "contains(subject,'message 0') and receivedDateTime ge 2026-11-01T08:04:00Z",
            "$select": "subject,from",
        },
    ).json()["value"]
    assert [m["subject"] for m in combined] == ["Message 05", "Message 04"]
    assert combined[0]["from"]["emailAddress"]["address"] == "vendor@vendor.example"
    assert "body" not in combined[0]
    assert graph.get(url, params={"$filter": "hasAttachments eq true"}).json()["value"] == []
    graph_error(
        graph.get(url, params={"$filter": "isRead eq true or isRead eq false"}),
        400,
        "ErrorInvalidUrlQueryFilter",
    )
    graph_error(graph.get(url, params={"$filter": "bogus eq 1"}), 400, "BadRequest")


def test_message_json_and_mime_value(sandbox: SandboxController, graph: httpx.Client) -> None:
    folder = seed_folder(sandbox, 1)
    stored = mailbox(sandbox).messages(folder.folder_id)[0]
    message = graph.get(f"{USER}/messages/{stored.item_id}").json()
    for key in ("id", "changeKey", "subject", "bodyPreview", "receivedDateTime", "sentDateTime"):
        assert message[key], key
    assert message["body"] == {"contentType": "text", "content": "Body of Message 00\n"}
    assert message["parentFolderId"] == folder.folder_id
    assert message["toRecipients"] == [{"emailAddress": {"name": SHARED, "address": SHARED}}]
    value = graph.get(f"{USER}/messages/{stored.item_id}/$value")
    assert value.status_code == 200 and value.content == stored.raw


def test_patch_move_delete(sandbox: SandboxController, graph: httpx.Client) -> None:
    folder = seed_folder(sandbox, 3)
    box = mailbox(sandbox)
    stored = box.messages(folder.folder_id)
    first, second, third = (m.item_id for m in stored)
    # Message-IDs are unique per seeded message; other tests share the mailbox.
    second_mid, third_mid = stored[1].message_id, stored[2].message_id
    patched = graph.patch(f"{USER}/messages/{second}", json={"isRead": True})
    assert patched.status_code == 200 and patched.json()["isRead"] is True
    assert graph.get(f"{USER}/messages/{second}").json()["isRead"] is True
    flagged = graph.patch(f"{USER}/messages/{second}", json={"flag": {"flagStatus": "flagged"}})
    assert flagged.json()["flag"] == {"flagStatus": "flagged"}

    moved = graph.post(f"{USER}/messages/{first}/move", json={"destinationId": "archive"})
    assert moved.status_code == 201
    new_id = moved.json()["id"]
    assert new_id != first and moved.json()["parentFolderId"] == box.folder("archive").folder_id
    graph_error(graph.get(f"{USER}/messages/{first}"), 404, "ErrorItemNotFound")
    copied = graph.post(f"{USER}/messages/{new_id}/copy", json={"destinationId": "inbox"})
    assert copied.status_code == 201 and copied.json()["id"] != new_id

    assert graph.delete(f"{USER}/messages/{second}").status_code == 204
    assert any(m.message_id == second_mid for m in box.messages("deleteditems"))
    assert graph.post(f"{USER}/messages/{third}/permanentDelete").status_code == 204
    graph_error(graph.get(f"{USER}/messages/{third}"), 404, "ErrorItemNotFound")
    assert all(m.message_id != third_mid for m in box.messages("deleteditems"))
    assert box.messages(folder.folder_id) == []


def test_send_mail_json_and_mime(sandbox: SandboxController, graph: httpx.Client) -> None:
    alice = mailbox(sandbox, f"alice@{DOMAIN}")
    sent = graph.post(
        f"{USER}/sendMail",
        json={
            "message": {
                "subject": "Ticket 77 resolved",
                "body": {"contentType": "Text", "content": "Fixed."},
                "toRecipients": [{"emailAddress": {"address": f"alice@{DOMAIN}"}}],
            },
            "saveToSentItems": True,
        },
    )
    assert sent.status_code == 202 and sent.content == b""
    assert any(m.subject == "Ticket 77 resolved" for m in alice.messages("inbox"))
    assert any(m.subject == "Ticket 77 resolved" for m in mailbox(sandbox).messages("sentitems"))

    mime = EmailMessage()
    mime["From"] = SHARED
    mime["To"] = f"alice@{DOMAIN}"
    mime["Subject"] = "Sent as MIME"
    mime.set_content("raw body")
    answer = graph.post(
        f"{USER}/sendMail",
        content=base64.b64encode(mime.as_bytes()),
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status_code == 202
    assert any(m.subject == "Sent as MIME" for m in alice.messages("inbox"))
    bad = graph.post(f"{USER}/sendMail", content=b"%%%", headers={"Content-Type": "text/plain"})
    graph_error(bad, 400, "ErrorMimeContentInvalidBase64String")


def test_delta_initial_incremental_removed_and_gone(
    sandbox: SandboxController, graph: httpx.Client
) -> None:
    folder = seed_folder(sandbox, 5)
    url = f"{USER}/mailFolders/{folder.folder_id}/messages/delta"
    prefer = {"Prefer": "odata.maxpagesize=2"}
    seen: list[dict[str, Any]] = []
    answer = graph.get(url, headers=prefer).json()
    pages = 1
    while "@odata.nextLink" in answer:
        seen.extend(answer["value"])
        answer = graph.get(answer["@odata.nextLink"], headers=prefer).json()
        pages += 1
    seen.extend(answer["value"])
    assert pages == 3 and len({m["id"] for m in seen}) == 5
    delta_link = answer["@odata.deltaLink"]
    assert graph.get(delta_link).json()["value"] == []

    box = mailbox(sandbox)
    items = box.messages(folder.folder_id)
    box.set_flags(items[1].item_id, add={"\\Seen"})
    box.soft_delete(items[2].item_id)
    added = box.append(folder.folder_id, make_message("Late arrival"))
    changes = graph.get(delta_link).json()
    by_id = {m["id"]: m for m in changes["value"]}
    assert by_id[items[1].item_id]["isRead"] is True
    assert by_id[items[2].item_id]["@removed"] == {"reason": "deleted"}
    assert by_id[added.item_id]["subject"] == "Late arrival"
    assert len(by_id) == 3

    with httpx.Client(verify=sandbox.ssl_context()) as admin:
        admin.post(f"{sandbox.base_url}/_sandbox/graph/delta/expire").raise_for_status()
    graph_error(graph.get(changes["@odata.deltaLink"]), 410, "syncStateNotFound")


def test_authentication_and_authorization_errors(
    sandbox: SandboxController, graph: httpx.Client, tokens: Tokens
) -> None:
    path = f"{USER}/messages"
    graph_error(graph.get(path, headers={"Authorization": ""}), 401, "InvalidAuthenticationToken")
    garbage = graph.get(path, headers={"Authorization": "Bearer not.a.jwt"})
    graph_error(garbage, 401, "InvalidAuthenticationToken")
    assert garbage.headers["WWW-Authenticate"].startswith("Bearer")
    exchange = {"Authorization": f"Bearer {tokens.app(EXCHANGE_DEFAULT)}"}
    error = graph_error(graph.get(path, headers=exchange), 401, "InvalidAuthenticationToken")
    assert "audience" in error["message"]
    user_read = {"Authorization": f"Bearer {tokens.user(['User.Read'])}"}
    error = graph_error(graph.get(path, headers=user_read), 403, "ErrorAccessDenied")
    assert error["message"] == "Access is denied. Check credentials and try again."
    policy = graph.get(f"/users/alice@{DOMAIN}/messages")
    graph_error(policy, 403, "ErrorAccessDenied")
    graph_error(graph.get(f"/users/nobody@{DOMAIN}/messages"), 404, "ErrorInvalidUser")
    graph_error(graph.get(f"{USER}/messages/AAMkNothing"), 404, "ErrorItemNotFound")
    read_only = {"Authorization": f"Bearer {tokens.user(['Mail.ReadWrite'])}"}
    no_send = graph.post(
        f"/users/alice@{DOMAIN}/sendMail",
        headers=read_only,
        json={"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": SHARED}}]}},
    )
    graph_error(no_send, 403, "ErrorAccessDenied")
    # Delegated: alice reads her own mailbox and /me, but not bob's.
    assert graph.get("/me/mailFolders/inbox", headers=read_only).json()["displayName"] == "Inbox"
    graph_error(
        graph.get(f"/users/bob@{DOMAIN}/messages", headers=read_only), 403, "ErrorAccessDenied"
    )


def test_throttling_answers_429_with_retry_after(
    sandbox: SandboxController, graph: httpx.Client
) -> None:
    admin = httpx.Client(base_url=sandbox.base_url, verify=sandbox.ssl_context())
    with admin:
        admin.post(
            "/_sandbox/graph/throttle", json={"count": 2, "retry_after": 7, "mailbox": SHARED}
        )
        for _ in range(2):
            answer = graph.get(f"{USER}/mailFolders")
            graph_error(answer, 429, "ApplicationThrottled")
            assert answer.headers["Retry-After"] == "7"
        assert graph.get(f"{USER}/mailFolders").status_code == 200
        # A real budget: 3 requests per window, the next one waits for the window to move.
        admin.post("/_sandbox/graph/throttle", json={"reset": True, "requests_per_10_minutes": 3})
        try:
            codes = [graph.get(f"{USER}/mailFolders").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            last = graph.get(f"{USER}/mailFolders")
            assert 1 <= int(last.headers["Retry-After"]) <= 600
        finally:
            admin.post("/_sandbox/graph/throttle", json={"reset": True})
