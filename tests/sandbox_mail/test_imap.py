"""The sandbox IMAP server driven by stdlib imaplib (and imapclient), with sandbox tokens."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Callable

import pytest

from mailgate.protocols.sasl import xoauth2_initial_response
from mailgate.testing import SandboxController
from tests.sandbox_mail.conftest import GRAPH, address, b64, imap_connect, imap_login

pytestmark = pytest.mark.sandbox


def test_greeting_and_capabilities(sandbox: SandboxController) -> None:
    client = imap_connect(sandbox)
    assert client.welcome.startswith(b"* OK The Microsoft Exchange IMAP4 service is ready.")
    for cap in ("AUTH=XOAUTH2", "AUTH=OAUTHBEARER", "SASL-IR", "IDLE", "MOVE", "UIDPLUS"):
        assert cap in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.login(address("alice"), "password")
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.authenticate("PLAIN", lambda _: b"\0alice\0pw")
    client.logout()


def test_app_only_read_flow(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    client = imap_login(sandbox, address("approvals"), app_token())
    status, data = client.select("INBOX")
    assert status == "OK" and int(data[0] or 0) >= 3
    status, data = client.uid("SEARCH", None, "ALL")
    uids = (data[0] or b"").split()
    assert len(uids) >= 3
    status, data = client.uid("SEARCH", None, "UNSEEN", "SUBJECT", '"Re: Approval"')
    assert status == "OK" and len((data[0] or b"").split()) == 2
    status, data = client.uid("SEARCH", None, "OR", "FROM", "bob@", "FROM", "alice@")
    assert len((data[0] or b"").split()) == 2
    status, data = client.uid("SEARCH", None, "SINCE", "1-Jan-2000", "NOT", "LARGER", "100000")
    assert len((data[0] or b"").split()) >= 3
    status, data = client.uid("SEARCH", None, "BEFORE", "1-Jan-2000")
    assert data == [b""]
    status, data = client.uid("SEARCH", None, "UID", b"2:*")
    assert (data[0] or b"").split()[0] == b"2"
    first = uids[0].decode()
    status, data = client.uid(
        "FETCH", first, "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODY.PEEK[HEADER])"
    )
    head = data[0]
    assert isinstance(head, tuple)
    assert b"ENVELOPE (" in head[0] and b"RFC822.SIZE" in head[0]
    assert b"Subject: Re: Approval needed" in head[1]
    status, data = client.uid("FETCH", first, "(FLAGS)")
    assert b"\\Seen" not in (data[0] or b"")  # PEEK left it unread
    status, data = client.uid("FETCH", first, "(BODY[])")
    assert isinstance(data[0], tuple) and b"\r\nSubject: Re: Approval" in data[0][1]
    status, data = client.uid("FETCH", first, "(FLAGS)")
    assert b"\\Seen" in (data[0] or b"")
    client.uid("STORE", first, "-FLAGS.SILENT", "(\\Seen)")
    client.logout()


def test_fetch_parts_and_partial(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    client = imap_login(sandbox, address("alice"), app_token())
    client.select("INBOX", readonly=True)
    _, data = client.uid("SEARCH", None, "SUBJECT", '"Invoice 4711"')
    (uid,) = (data[0] or b"").split()
    _, data = client.uid(
        "FETCH",
        uid.decode(),
        "(BODYSTRUCTURE BODY.PEEK[2] BODY.PEEK[1]<0.10> BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])",
    )
    text = b"".join(p if isinstance(p, bytes) else b"".join(p) for p in data)
    assert b'("APPLICATION" "PDF" NIL NIL NIL "BASE64" ' in text
    assert b'"MIXED"' in text and b'("ATTACHMENT" ("FILENAME" "invoice-4711.pdf"))' in text
    assert b"BODY[1]<0> {10}" in text
    assert b"{55}From: billing@vendor.example\r\nSubject: Invoice 4711\r\n\r\n" in text
    part2 = next(p[1] for p in data if isinstance(p, tuple) and b"BODY[2]" in p[0])
    import base64

    assert len(base64.b64decode(part2)) == 11000
    client.logout()


def test_list_create_non_ascii_and_append(
    sandbox: SandboxController, app_token: Callable[..., str]
) -> None:
    client = imap_login(sandbox, address("servicedesk"), app_token())
    _, listing = client.list()
    lines = [line.decode() for line in listing if isinstance(line, bytes)]
    assert any('"INBOX"' in line for line in lines)
    assert any("\\Trash" in line and "Deleted Items" in line for line in lines)
    assert any("\\Sent" in line for line in lines)
    name = 'INBOX/Rechnungen &AMQ-rger "2026"'  # "Ärger" in modified UTF-7, quotes, spaces
    status, _ = client.create('"INBOX/Rechnungen &AMQ-rger \\"2026\\""')
    assert status == "OK"
    _, listing = client.list('""', '"INBOX/*"')
    assert any(name.replace('"', '\\"') in (line or b"").decode() for line in listing)
    mailbox = sandbox.server.mail.store.mailbox(address("servicedesk"))  # type: ignore[union-attr]
    assert mailbox.folder('Inbox/Rechnungen Ärger "2026"')
    message = b"From: x@example.com\r\nSubject: appended\r\n\r\nhello\r\n"
    status, data = client.append(
        '"INBOX/Rechnungen &AMQ-rger \\"2026\\""', "(\\Seen)", None, message
    )
    assert status == "OK" and b"APPENDUID" in (data[0] or b"")
    status, data = client.status(
        '"INBOX/Rechnungen &AMQ-rger \\"2026\\""', "(MESSAGES UNSEEN UIDNEXT)"
    )
    assert b"MESSAGES 1" in (data[0] or b"") and b"UNSEEN 0" in (data[0] or b"")
    client.logout()


def test_store_copy_move_expunge(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    client = imap_login(sandbox, address("noreply"), app_token())
    for i in range(3):
        client.append("INBOX", None, None, f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
    client.select("INBOX")
    _, data = client.uid("SEARCH", None, "ALL")
    a, b, c = (u.decode() for u in (data[0] or b"").split())
    status, data = client.uid("STORE", a, "+FLAGS", "(\\Flagged)")
    assert b"\\Flagged" in (data[0] or b"")
    status, data = client.uid("COPY", a, "Archive")
    assert status == "OK"
    _, code = client.response("COPYUID")
    assert re.fullmatch(rb"\d+ " + a.encode() + rb" 1", code[0] or b"")
    typ, data = client.uid("MOVE", b, '"Deleted Items"')
    assert typ == "OK"
    untagged = client.untagged_responses
    assert any(b"COPYUID" in x for x in untagged.get("OK", []))
    assert untagged.get("EXPUNGE") == [b"2"]
    client.uid("STORE", c, "+FLAGS.SILENT", "(\\Deleted)")
    status, data = client.expunge()
    assert status == "OK" and data[-1] == b"2"
    _, data = client.uid("SEARCH", None, "ALL")
    assert (data[0] or b"").split() == [a.encode()]
    mailbox = sandbox.server.mail.store.mailbox(address("noreply"))  # type: ignore[union-attr]
    assert [m.subject for m in mailbox.messages("deleteditems")] == ["m1"]
    client.uid("STORE", a, "+FLAGS.SILENT", "(\\Deleted)")
    status, _ = client.uid("EXPUNGE", a)
    assert status == "OK" and mailbox.messages("inbox") == []
    client.close()
    client.logout()


def test_idle_pushes_exists(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    port = sandbox.description["mail"]["imap"]["port"]
    token = xoauth2_initial_response(address("servicedesk"), app_token())
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sandbox.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        stream = conn.makefile("rwb")

        def command(line: bytes) -> list[bytes]:
            stream.write(line + b"\r\n")
            stream.flush()
            out = []
            while True:
                got = stream.readline()
                out.append(got)
                if got.startswith((b"a ", b"+")):
                    return out

        stream.readline()
        assert command(b"a AUTHENTICATE XOAUTH2 " + b64(token).encode())[-1].startswith(b"a OK")
        assert command(b"a SELECT INBOX")[-1].startswith(b"a OK")
        assert command(b"a IDLE")[-1].startswith(b"+ ")
        assert sandbox.deliver(b"Subject: pushed\r\n\r\nhi\r\n", address("servicedesk"))
        assert re.match(rb"\* \d+ EXISTS", stream.readline())
        assert command(b"DONE")[-1].startswith(b"a OK IDLE")
        assert command(b"a LOGOUT")[-1].startswith(b"a OK")


def test_imapclient_idle_and_move(
    sandbox: SandboxController, app_token: Callable[..., str]
) -> None:
    imapclient = pytest.importorskip("imapclient")
    port = sandbox.description["mail"]["imap"]["port"]
    context = sandbox.ssl_context()
    with imapclient.IMAPClient(
        "127.0.0.1", port=port, ssl=True, ssl_context=context, timeout=10
    ) as c:
        c.oauth2_login(address("alice"), app_token())
        c.select_folder("INBOX")
        uids = c.search(["SUBJECT", "Weekly digest"])
        assert len(uids) == 1
        c.move(uids, "Archive")
        assert c.search(["SUBJECT", "Weekly digest"]) == []
        c.select_folder("Archive")
        (moved,) = c.search(["SUBJECT", "Weekly digest"])
        fetched = c.fetch([moved], ["ENVELOPE", "FLAGS"])[moved]
        assert fetched[b"ENVELOPE"].subject == b"Weekly digest"
        assert b"\\Flagged" in fetched[b"FLAGS"]
        c.idle()
        sandbox.server.mail.store.mailbox(address("alice")).append(  # type: ignore[union-attr]
            "archive", b"Subject: late\r\n\r\nx\r\n"
        )
        responses = c.idle_check(timeout=5)
        c.idle_done()
        assert any(r[1] == b"EXISTS" for r in responses)


def test_big_message_roundtrip(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    client = imap_login(sandbox, address("alice"), app_token())
    body = (b"x" * 76 + b"\r\n") * (50 * 1024 * 1024 // 78)
    message = b"Subject: big\r\n\r\n" + body
    status, data = client.append("Drafts", None, None, message)
    assert status == "OK"
    uid = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"").group(1)  # type: ignore[union-attr]
    client.select("Drafts", readonly=True)
    _, data = client.uid("FETCH", uid.decode(), "(RFC822.SIZE BODY.PEEK[])")
    assert isinstance(data[0], tuple) and data[0][1] == message
    client.logout()


def test_token_refusals(
    sandbox: SandboxController, app_token: Callable[..., str], user_token: Callable[..., str]
) -> None:
    cases = [
        (address("alice"), app_token("mailgate-nosp")),  # SP never registered in Exchange
        (address("alice"), app_token("mailgate-wrongsp")),  # registered with the wrong id
        (address("alice"), app_token(scope=GRAPH)),  # Graph token on IMAP
        (address("alice"), user_token("alice", ["https://outlook.office.com/SMTP.Send"])),
        (address("alice"), "not-a-token"),
    ]
    for user, token in cases:
        client = imap_connect(sandbox)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATE failed"):
            client.authenticate(
                "XOAUTH2", lambda _, u=user, t=token: xoauth2_initial_response(u, t)
            )
        client.logout()


@pytest.mark.parametrize("mailbox", ["bob", "nobody"])
def test_authenticated_but_not_connected(
    sandbox: SandboxController, app_token: Callable[..., str], mailbox: str
) -> None:
    client = imap_login(sandbox, address(mailbox), app_token())
    with pytest.raises(imaplib.IMAP4.error, match="User is authenticated but not connected"):
        client.select("INBOX")
    client.logout()


def test_delegated_with_continuation(
    sandbox: SandboxController, user_token: Callable[..., str]
) -> None:
    token = user_token("alice", ["https://outlook.office.com/IMAP.AccessAsUser.All"])
    port = sandbox.description["mail"]["imap"]["port"]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sandbox.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        stream = conn.makefile("rwb")
        stream.readline()
        stream.write(b"a AUTHENTICATE OAUTHBEARER\r\n")
        stream.flush()
        assert stream.readline().startswith(b"+")
        payload = f"n,a={address('approvals')},\x01auth=Bearer {token}\x01\x01".encode()
        stream.write(b64(payload).encode() + b"\r\n")
        stream.flush()
        assert stream.readline() == b"a OK AUTHENTICATE completed.\r\n"
        stream.write(b"b SELECT {5}\r\n")
        stream.flush()
        assert stream.readline().startswith(b"+")
        stream.write(b"INBOX\r\n")
        stream.flush()
        lines = [stream.readline()]
        while not lines[-1].startswith(b"b "):
            lines.append(stream.readline())
        assert lines[-1].startswith(b"b OK [READ-WRITE]"), lines
        assert b"* 3 EXISTS\r\n" in lines
    assert isinstance(ssl.OPENSSL_VERSION, str)
