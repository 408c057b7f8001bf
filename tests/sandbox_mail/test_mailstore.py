"""Unit tests of the shared in-memory mail store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from mailgate.sandbox.exchange.store import WELL_KNOWN, Change, MailStore, StoredMailbox

RAW = (
    b"From: Vendor <billing@vendor.example>\r\n"
    b"To: alice@contoso.example, Bob <bob@contoso.example>\r\n"
    b"Cc: carol@contoso.example\r\n"
    b"Subject: =?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?=\r\n"
    b"Date: Tue, 03 Mar 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@vendor.example>\r\n"
    b"\r\n"
    b"Body\r\n"
)


@pytest.fixture
def mailbox() -> StoredMailbox:
    return MailStore().add_mailbox("Alice@Contoso.example", "Alice")


def test_well_known_folders_and_lookup(mailbox: StoredMailbox) -> None:
    names = [f.name for f in mailbox.folders()]
    assert names == list(WELL_KNOWN.values())
    inbox = mailbox.folder("inbox")
    assert mailbox.folder("INBOX") is inbox
    assert mailbox.folder(inbox.folder_id) is inbox
    assert mailbox.folder("DeletedItems").name == "Deleted Items"
    assert mailbox.folder("deleted items").well_known == "deleteditems"
    with pytest.raises(KeyError):
        mailbox.folder("nope")
    assert len({f.uidvalidity for f in mailbox.folders()}) == len(WELL_KNOWN)


def test_create_folder_hierarchy(mailbox: StoredMailbox) -> None:
    sub = mailbox.create_folder("Invoices", parent="inbox")
    assert sub.name == "Inbox/Invoices"
    assert sub.parent_id == mailbox.folder("inbox").folder_id
    assert mailbox.folder("INBOX/invoices") is sub
    with pytest.raises(ValueError, match="exists"):
        mailbox.create_folder("invoices", parent="Inbox")
    top = mailbox.create_folder("Projekt Ä")
    assert top.parent_id is None and mailbox.folder("projekt ä") is top


def test_header_properties(mailbox: StoredMailbox) -> None:
    message = mailbox.append("inbox", RAW, ["\\Seen"])
    assert message.subject == "Rechnung für März"
    assert message.from_address == "billing@vendor.example"
    assert message.from_name == "Vendor"
    assert message.to == ("alice@contoso.example", "bob@contoso.example")
    assert message.cc == ("carol@contoso.example",)
    assert message.date == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert message.message_id == "<m1@vendor.example>"
    assert message.size == len(RAW)
    assert message.is_read and not message.has_attachments
    bare = mailbox.append("inbox", b"Subject: x\n\nno date")
    assert bare.date is None and bare.from_address == "" and bare.to == ()


def test_attachment_detection(mailbox: StoredMailbox) -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\ntext\r\n--b\r\n'
        b'Content-Disposition: attachment; filename="a.pdf"\r\n\r\nxx\r\n--b--\r\n'
    )
    assert mailbox.append("inbox", raw).has_attachments


def test_append_assigns_uids_and_ids(mailbox: StoredMailbox) -> None:
    first = mailbox.append("inbox", RAW)
    second = mailbox.append("inbox", RAW)
    assert (first.uid, second.uid) == (1, 2)
    assert mailbox.folder("inbox").uidnext == 3
    assert first.item_id != second.item_id
    assert all(c.isalnum() or c in "-_" for c in first.item_id)
    assert mailbox.messages("inbox") == [first, second]
    assert mailbox.get(first.item_id) == (mailbox.folder("inbox"), first)
    assert first.internal_date.tzinfo is not None


def test_move_gives_new_uid_and_id(mailbox: StoredMailbox) -> None:
    message = mailbox.append("inbox", RAW, ["\\Flagged"])
    moved = mailbox.move(message.item_id, "archive")
    assert moved.item_id != message.item_id and moved.uid == 1
    assert moved.raw is message.raw and moved.flags == {"\\Flagged"}
    assert mailbox.messages("inbox") == []
    with pytest.raises(KeyError):
        mailbox.get(message.item_id)
    assert mailbox.get(moved.item_id)[0].name == "Archive"


def test_copy_shares_bytes(mailbox: StoredMailbox) -> None:
    message = mailbox.append("inbox", RAW)
    copied = mailbox.copy(message.item_id, "inbox")
    assert copied.raw is message.raw and copied.uid == 2
    assert len(mailbox.messages("inbox")) == 2


def test_flags_change_key(mailbox: StoredMailbox) -> None:
    message = mailbox.append("inbox", RAW)
    key = message.change_key
    mailbox.set_flags(message.item_id, add=["\\Seen", "\\Flagged"])
    assert message.flags == {"\\Seen", "\\Flagged"} and message.change_key != key
    key = message.change_key
    mailbox.set_flags(message.item_id, add=["\\Seen"])
    assert message.change_key == key  # no real change
    mailbox.set_flags(message.item_id, remove=["\\Seen"])
    assert message.flags == {"\\Flagged"} and not message.is_read


def test_soft_delete_and_remove(mailbox: StoredMailbox) -> None:
    message = mailbox.append("inbox", RAW)
    deleted = mailbox.soft_delete(message.item_id)
    assert mailbox.get(deleted.item_id)[0].well_known == "deleteditems"
    mailbox.remove(deleted.item_id)
    assert mailbox.messages("deleteditems") == []
    with pytest.raises(KeyError):
        mailbox.remove(deleted.item_id)


def test_changes_full_then_delta(mailbox: StoredMailbox) -> None:
    a = mailbox.append("inbox", RAW)
    b = mailbox.append("inbox", RAW)
    full, token = mailbox.changes("inbox", 0)
    assert full == [Change("created", a.item_id), Change("created", b.item_id)]
    assert mailbox.changes("inbox", token) == ([], token)
    mailbox.set_flags(a.item_id, add=["\\Seen"])
    moved = mailbox.move(b.item_id, "archive")
    c = mailbox.append("inbox", RAW)
    mailbox.set_flags(c.item_id, add=["\\Seen"])  # created + updated = created
    d = mailbox.append("inbox", RAW)
    mailbox.remove(d.item_id)  # created + deleted = nothing
    changes, token2 = mailbox.changes("inbox", token)
    assert changes == [
        Change("updated", a.item_id),
        Change("deleted", b.item_id),
        Change("created", c.item_id),
    ]
    assert token2 > token
    archive, _ = mailbox.changes("archive", token)
    assert archive == [Change("created", moved.item_id)]
    mailbox.set_flags(a.item_id, add=["\\Flagged"])
    mailbox.remove(a.item_id)  # updated + deleted = deleted
    assert mailbox.changes("inbox", token2)[0] == [Change("deleted", a.item_id)]


def test_subscribe_and_unsubscribe(mailbox: StoredMailbox) -> None:
    calls: list[str] = []
    stop = mailbox.subscribe("inbox", lambda: calls.append("inbox"))
    mailbox.subscribe("archive", lambda: calls.append("archive"))
    message = mailbox.append("inbox", RAW)
    mailbox.set_flags(message.item_id, add=["\\Seen"])
    mailbox.move(message.item_id, "archive")
    assert calls == ["inbox", "inbox", "inbox", "archive"]
    stop()
    mailbox.append("inbox", RAW)
    assert calls == ["inbox", "inbox", "inbox", "archive"]


def test_deliver_to_known_recipients_only() -> None:
    store = MailStore()
    alice = store.add_mailbox("alice@contoso.example")
    store.add_mailbox("bob@contoso.example")
    assert store.add_mailbox("ALICE@contoso.example") is alice
    delivered = store.deliver(
        RAW, ["Alice@contoso.example", "x@external.example", "alice@contoso.example"]
    )
    assert delivered == ["alice@contoso.example"]
    assert len(alice.messages("inbox")) == 1
    assert store.mailbox("ALICE@CONTOSO.EXAMPLE") is alice
    with pytest.raises(KeyError):
        store.mailbox("x@external.example")
    assert [m.address for m in store.mailboxes()] == [
        "alice@contoso.example",
        "bob@contoso.example",
    ]


def test_threads_do_not_lose_messages(mailbox: StoredMailbox) -> None:
    seen: list[int] = []
    mailbox.subscribe("archive", lambda: seen.append(1))

    def work() -> None:
        for _ in range(100):
            message = mailbox.append("inbox", RAW)
            mailbox.set_flags(message.item_id, add=["\\Seen"])
            mailbox.move(message.item_id, "archive")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    archived = mailbox.messages("archive")
    assert len(archived) == 400 and len(seen) == 400
    assert [m.uid for m in archived] == list(range(1, 401))
    assert mailbox.messages("inbox") == []
    assert len(mailbox.changes("archive", 0)[0]) == 400
