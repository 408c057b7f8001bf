"""Pure parts of the import: policy checks, keys, state steps, webhook signature and retries."""

from __future__ import annotations

import base64
import json

import pytest

from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.jobs.importing.keys import ItemKey, Step, idempotency_key, item_key, next_step
from mailgate.jobs.importing.postprocess import check_policy, explicit_source, is_oversize
from mailgate.jobs.importing.webhook import (
    MessageIdentity,
    check_webhook_url,
    retry_delay,
    sign,
    verify_signature,
    webhook_payload,
)
from mailgate.protocols.base import MessageRef, Operation, Protocol, UnsupportedOperation
from mailgate.secret import Secret
from mailgate.settings import PostProcess

ALL = frozenset(Operation)
POP3 = frozenset({Operation.SEARCH, Operation.FETCH, Operation.DELETE_PERMANENTLY})


def _check(after: PostProcess, **kw: object) -> object:
    args: dict[str, object] = {
        "after_source": "command line",
        "confirmed": False,
        "move_to": None,
        "max_size": 100,
        "oversize_folder": "mailgate-oversize",
        "protocol": Protocol.IMAP,
        "operations": ALL,
    } | kw
    return check_policy(after, **args)  # type: ignore[arg-type]


def test_keep_and_delete_need_nothing() -> None:
    for after in (PostProcess.KEEP, PostProcess.DELETE, PostProcess.MARK_READ):
        assert _check(after).after is after  # type: ignore[attr-defined]


def test_permanent_delete_needs_confirmation_and_an_explicit_source() -> None:
    with pytest.raises(ConfigurationError, match="needs confirmation") as info:
        _check(PostProcess.PERMANENT_DELETE)
    assert "--after delete" in info.value.remedy
    assert _check(PostProcess.PERMANENT_DELETE, confirmed=True)
    assert _check(PostProcess.PERMANENT_DELETE, confirmed=True, after_source="/c.toml jobs.x")
    for shared in ("default", "/c.toml [import]", "/c.toml mailboxes.m [import]", "environment"):
        with pytest.raises(ConfigurationError, match="shared default"):
            _check(PostProcess.PERMANENT_DELETE, confirmed=True, after_source=shared)
    assert explicit_source("command line") and not explicit_source("default")


def test_move_needs_a_folder() -> None:
    with pytest.raises(ConfigurationError, match="--after move needs"):
        _check(PostProcess.MOVE, move_to="  ")
    assert _check(PostProcess.MOVE, move_to=" Done ").move_to == "Done"  # type: ignore[attr-defined]


@pytest.mark.parametrize("after", [PostProcess.MARK_READ, PostProcess.MOVE, PostProcess.DELETE])
def test_pop3_refuses_what_it_cannot_do(after: PostProcess) -> None:
    with pytest.raises(UnsupportedOperation, match="POP3") as info:
        _check(after, protocol=Protocol.POP3, operations=POP3, move_to="X")
    assert "permanent-delete" in info.value.remedy


def test_pop3_keeps_oversize_mail_in_place() -> None:
    policy = _check(PostProcess.KEEP, protocol=Protocol.POP3, operations=POP3)
    assert policy.oversize_folder is None  # type: ignore[attr-defined]
    assert is_oversize(101, 100) and not is_oversize(100, 100) and not is_oversize(None, 1)


def test_keys() -> None:
    imap = item_key(Protocol.IMAP, MessageRef("INBOX", "17:42"))
    assert imap == ItemKey("INBOX", 17, "42")
    assert item_key(Protocol.GRAPH, MessageRef("Inbox", "AAMk:1")) == ItemKey("Inbox", 0, "AAMk:1")
    key = idempotency_key("job", "box", imap)
    assert key == idempotency_key("job", "box", ItemKey("INBOX", 17, "42"))
    assert len({key, idempotency_key("job", "box", ItemKey("INBOX", 18, "42")),
                idempotency_key("job2", "box", imap)}) == 3  # fmt: skip


def test_steps() -> None:
    assert next_step(None) is Step.DELIVER
    assert next_step("delivering") is Step.DELIVER and next_step("failed") is Step.DELIVER
    assert next_step("oversize") is Step.SKIP and next_step("done") is Step.SKIP
    assert next_step("delivered") is Step.POSTPROCESS
    with pytest.raises(ValueError):
        next_step("bogus")


def test_signature_round_trip_and_tamper() -> None:
    secret = Secret("s3cret")
    body = b'{"a":1}'
    header = sign(body, secret)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(body, secret, header)
    assert not verify_signature(body + b" ", secret, header)
    assert not verify_signature(body, Secret("other"), header)


def test_retry_rule() -> None:
    assert retry_delay(200, 1, None) is None
    assert retry_delay(400, 1, None) is None and retry_delay(401, 1, None) is None
    assert retry_delay(500, 1, None) == 0.5 and retry_delay(503, 2, None) == 1.0
    assert retry_delay(429, 1, "7") == 7.0 and retry_delay(429, 1, "9999") == 30.0
    assert retry_delay(None, 1, None) == 0.5  # network failure
    assert retry_delay(500, 3, None) is None  # attempts used up


def test_webhook_url_rules() -> None:
    assert check_webhook_url("https://hooks.example.com/x")
    assert check_webhook_url("http://127.0.0.1:8080/x")
    for bad in ("http://example.com/x", "ftp://x/y", "not a url"):
        with pytest.raises(InvalidInputError):
            check_webhook_url(bad)


def test_payload_carries_bodies_and_attachments() -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\nMessage-ID: <m@x>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
        b'--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--B--\r\n"
    )
    identity = MessageIdentity("j", "m", "INBOX", 1, "2", "k" * 64, "h" * 64, len(raw))
    payload = webhook_payload(raw, identity)
    json.dumps(payload)
    assert payload["message_id"] == "<m@x>" and payload["text"].strip() == "hello"
    assert payload["idempotency_key"] == "k" * 64
    (attachment,) = payload["attachments"]
    assert base64.b64decode(attachment["content_base64"]) == b"%PDF"
    assert attachment["filename"] == "a.pdf"
    assert ["Subject", "Hi"] in payload["headers"]


def test_webhook_urls_are_shown_without_keys() -> None:
    from mailgate.jobs.importing.webhook import shown_url

    assert shown_url("https://u:tok@x.example/api/f?code=K&a=1#f") == "https://x.example/api/f?…"
    assert shown_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert "K" not in shown_url("https://x.example/?code=K")
