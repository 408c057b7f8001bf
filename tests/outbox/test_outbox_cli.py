"""``mailgate send --queue`` and ``mailgate outbox`` end to end against the sandbox.

Deliveries are counted in the recipients' sandbox mailboxes, so "exactly once" is checked at the
far end, not in the outbox's own bookkeeping.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, add_sandbox_credential, assert_no_traceback

DOMAIN = "contoso.onmicrosoft.com"
DESK = f"servicedesk@{DOMAIN}"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("outbox-idp")) as controller:
        # Many tests send from one mailbox within a minute; the storm test lowers it again.
        _tenant(controller).exchange.smtp_messages_per_minute = 100_000
        yield controller


def _tenant(idp: SandboxController) -> Any:
    assert idp.server is not None and idp.server.mail is not None
    tenant = idp.server.mail.tenant(idp.tenant("contoso")["id"])
    assert tenant is not None
    return tenant


@pytest.fixture
def ocli(cli: Cli, idp: SandboxController) -> Cli:
    add_sandbox_credential(cli, idp)
    for name, protocol in (("out", "smtp"), ("read", "imap"), ("graph", "graph")):
        result = cli(
            "mailbox", "add", name, "--credential", "daemon", "--protocol", protocol,
            "--address", f"approvals@{DOMAIN}",
        )  # fmt: skip
        assert result.code == 0, result.text
    (cli.home / "config.toml").write_text(
        "[outbox]\nper_minute = 600\nbackoff_seconds = 0.2\nmax_backoff_seconds = 0.5\n"
    )
    return cli


def _tag() -> str:
    return f"T{random.randrange(10**9)}"


def _deliveries(idp: SandboxController, tag: str) -> Counter[str]:
    inbox = idp.mailstore.mailbox(DESK).messages("inbox")
    return Counter(m.subject for m in inbox if m.subject.startswith(tag))


def _queue(cli: Cli, mailbox: str, subject: str, *extra: str) -> int:
    result = cli(
        "send", mailbox, "--to", DESK, "--subject", subject, "--text", "x", "--queue", *extra
    )
    assert result.code == 0, result.text
    return int(result.out.split("outbox message ")[1].split(";")[0])


def _entries(cli: Cli, *args: str) -> list[dict[str, object]]:
    result = cli("outbox", "list", "--json", *args)
    assert result.code == 0, result.text
    rows: list[dict[str, object]] = json.loads(result.out)
    return rows


def test_queue_then_run_delivers_each_message_exactly_once(
    ocli: Cli, idp: SandboxController
) -> None:
    tag = _tag()
    ids = [_queue(ocli, "out", f"{tag} {i}") for i in range(5)]
    assert _deliveries(idp, tag) == Counter()  # queued, nothing sent yet
    listed = _entries(ocli, "--state", "queued")
    assert [r["id"] for r in listed] == ids and listed[0]["subject"] == f"{tag} 0"
    run = ocli("outbox", "run")
    assert run.code == 0, run.text
    assert "Sent 5, failed 0." in run.out
    assert _deliveries(idp, tag) == Counter({f"{tag} {i}": 1 for i in range(5)})
    assert {r["state"] for r in _entries(ocli)} == {"sent"}
    again = ocli("outbox", "run")  # nothing left: nothing sent twice
    assert again.code == 0 and "Sent 0" in again.out
    assert sum(_deliveries(idp, tag).values()) == 5
    table = ocli("outbox", "list")
    assert f"{tag} 4" in table.out and "sent" in table.out


def test_smtp_rate_limit_storm_is_retried_until_delivered(
    ocli: Cli, idp: SandboxController
) -> None:
    """The sandbox allows 2 messages per (accelerated) minute; mailgate is set to 600/min, so
    the server answers 452 4.3.2 until the window moves; every message still arrives once."""
    assert idp.server is not None and idp.server.mail is not None
    mail = idp.server.mail
    tenant = _tenant(idp)
    (ocli.home / "config.toml").write_text(
        "[outbox]\nper_minute = 600\nbackoff_seconds = 0.2\nmax_backoff_seconds = 0.5\n"
        "max_attempts = 40\n"
    )
    start = datetime.now(UTC)
    saved_clock, saved_limit = mail.clock, tenant.exchange.smtp_messages_per_minute
    mail.clock = lambda: start + (datetime.now(UTC) - start) * 60  # a minute per second
    tenant.exchange.smtp_messages_per_minute = 2
    try:
        tag = _tag()
        for i in range(6):
            _queue(ocli, "out", f"{tag} {i}")
        run = ocli("outbox", "run")
    finally:
        mail.clock = saved_clock
        tenant.exchange.smtp_messages_per_minute = saved_limit
    assert run.code == 0, run.text
    assert "throttling replies" in run.out
    assert _deliveries(idp, tag) == Counter({f"{tag} {i}": 1 for i in range(6)})
    attempts = [int(str(r["attempts"])) for r in _entries(ocli)]
    assert max(attempts) > 1


def test_permanent_failure_is_marked_failed_with_the_servers_reason(
    ocli: Cli, idp: SandboxController
) -> None:
    tag = _tag()
    bad = _queue(ocli, "out", f"{tag} denied", "--from", f"ceo@{DOMAIN}")
    good = _queue(ocli, "out", f"{tag} fine")
    run = ocli("outbox", "run")
    assert run.code == 1, run.text
    assert "Sent 1, failed 1." in run.out and "SendAsDenied" in run.text
    assert_no_traceback(run)
    failed = _entries(ocli, "--state", "failed")
    assert [r["id"] for r in failed] == [bad]
    assert "554 5.2.252 SendAsDenied" in str(failed[0]["last_error"])
    assert failed[0]["attempts"] == 1  # not retried
    assert _deliveries(idp, tag) == Counter({f"{tag} fine": 1})
    assert [r["id"] for r in _entries(ocli, "--state", "sent")] == [good]
    # retry puts it back; it fails the same way (the server's rule did not change)
    assert ocli("outbox", "retry", str(bad)).code == 0
    assert [r["state"] for r in _entries(ocli, "--state", "queued")] == ["queued"]
    assert ocli("outbox", "run").code == 1


def test_graph_429_retry_after_is_honoured(ocli: Cli, idp: SandboxController) -> None:
    with idp.http() as client:
        client.post(
            "/_sandbox/graph/throttle",
            json={"count": 2, "retry_after": 1, "mailbox": f"approvals@{DOMAIN}"},
        ).raise_for_status()
    (ocli.home / "config.toml").write_text("[outbox]\nmax_backoff_seconds = 5\n")
    tag = _tag()
    _queue(ocli, "graph", f"{tag} graph")
    run = ocli("outbox", "run")
    assert run.code == 0, run.text
    assert "retried 2 (2 throttling replies)" in run.out
    assert _deliveries(idp, tag) == Counter({f"{tag} graph": 1})
    (row,) = [r for r in _entries(ocli) if str(r["subject"]).startswith(tag)]
    assert row["attempts"] == 3 and row["state"] == "sent"


def test_sigkill_mid_drain_never_sends_twice(ocli: Cli, idp: SandboxController) -> None:
    """Kill the worker at seeded random moments, then let a last run finish: every message
    arrives at most once, and exactly once unless its row says the outcome is unknown."""
    rng = random.Random(4)
    tag = _tag()
    count = 40
    (ocli.home / "config.toml").write_text("[outbox]\nper_minute = 1200\n")
    for i in range(count):
        _queue(ocli, "out", f"{tag} {i:02d}")
    command = [sys.executable, "-m", "mailgate", "outbox", "run", "--sent-items-grace", "0"]
    for _ in range(4):
        worker = subprocess.Popen(
            command, env=ocli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(1.0, 2.5))  # the CLI needs ~1 s to start, then sends
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    final = ocli("outbox", "run", "--sent-items-grace", "0")
    assert final.code in (0, 1), final.text
    delivered = _deliveries(idp, tag)
    rows = {str(r["subject"]): r for r in _entries(ocli) if str(r["subject"]).startswith(tag)}
    assert len(rows) == count
    assert all(n == 1 for n in delivered.values()), delivered
    for subject, row in rows.items():
        if row["state"] == "sent":
            assert delivered[subject] == 1, (subject, row)
        else:
            assert row["state"] == "failed" and "outcome unknown" in str(row["last_error"])
    assert sum(1 for r in rows.values() if r["state"] == "sent") >= count - 4


def test_bad_input_is_refused_and_nothing_is_queued(ocli: Cli, tmp_path: Path) -> None:
    unknown = ocli("send", "nope", "--to", DESK, "--subject", "s", "--text", "t", "--queue")
    assert unknown.code == 2 and "no mailbox named 'nope'" in unknown.err
    run_unknown = ocli("outbox", "run", "--mailbox", "nope")
    assert run_unknown.code == 2 and "mailgate mailbox list" in run_unknown.err
    damaged = tmp_path / "damaged.eml"
    damaged.write_bytes(b"this is not\na message\n\nat all\n")
    bad_eml = ocli("send", "out", "--eml", str(damaged), "--queue")
    assert bad_eml.code == 2 and "expected an RFC 5322 message" in bad_eml.err
    assert "'this is not' in the header section is not a header" in bad_eml.err
    (ocli.home / "config.toml").write_text('[outbox]\nmax_message_size = "2KB"\n')
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    oversize = ocli(
        "send", "out", "--to", DESK, "--subject", "big", "--text", "t", "--attach", str(big),
        "--queue",
    )  # fmt: skip
    assert oversize.code == 2 and "outbox.max_message_size" in oversize.err
    pop = ocli("mailbox", "add", "pop", "--credential", "daemon", "--protocol", "pop",
               "--address", f"approvals@{DOMAIN}")  # fmt: skip
    assert pop.code == 0
    cannot = ocli("send", "pop", "--to", DESK, "--subject", "s", "--text", "t", "--queue")
    assert cannot.code == 2 and "POP cannot send" in cannot.err
    for result in (unknown, run_unknown, bad_eml, oversize, cannot):
        assert_no_traceback(result)
    assert _entries(ocli) == []


def test_retry_and_purge_errors(ocli: Cli, idp: SandboxController) -> None:
    tag = _tag()
    sent = _queue(ocli, "out", f"{tag} one")
    second = _queue(ocli, "out", f"{tag} two")
    assert ocli("outbox", "run", "--mailbox", "out", "--once").code == 0
    queued = _queue(ocli, "out", f"{tag} three")
    cases = [
        (("outbox", "retry", "999"), "999"),
        (("outbox", "retry", str(sent)), "only failed messages"),
        (("outbox", "retry"), "--all-failed"),
        (("outbox", "retry", "abc"), "valid integer"),
        (("outbox", "purge", "999"), "999"),
        (("outbox", "purge", str(queued)), "--force"),
        (("outbox", "purge", "--state", "queued"), "--force"),
        (("outbox", "purge", "--state", "done"), "one of queued, sending, sent, failed"),
        (("outbox", "purge", "--sent-before", "soon"), "7d"),
        (("outbox", "list", "--state", "nope"), "one of"),
        (("outbox", "run", "--once", "--follow"), "not both"),
    ]
    for args, words in cases:
        result = ocli(*args)
        assert result.code == 2, (args, result.text)
        assert words in result.text, (args, result.text)
        assert_no_traceback(result)
    assert {r["id"]: r["state"] for r in _entries(ocli)}[queued] == "queued"
    # a sent message of the last 24 hours is kept (it counts toward the daily limit) ...
    assert "Purged 0" in ocli("outbox", "purge", "--sent-before", "0s").out
    # ... unless forced; and an explicit id goes
    assert "Purged 1" in ocli("outbox", "purge", str(sent)).out
    assert ocli("outbox", "purge", str(queued), "--force").code == 0
    assert [(r["id"], r["state"]) for r in _entries(ocli)] == [(second, "sent")]


def _lose_answers(idp: SandboxController, protocol: str) -> None:
    """The sandbox takes the next submission but its answer never arrives (SMTP hangs up
    before the 250, Graph answers 504 as a gateway that gave up)."""
    idp.lose_answers(protocol)


@pytest.mark.parametrize(("mailbox", "protocol"), [("out", "smtp"), ("graph", "graph")])
def test_a_lost_answer_is_looked_up_in_sent_items_not_resent(
    ocli: Cli, idp: SandboxController, mailbox: str, protocol: str
) -> None:
    tag = _tag()
    _queue(ocli, mailbox, f"{tag} lost")
    _lose_answers(idp, protocol)
    run = ocli("outbox", "run", "--sent-items-grace", "0")
    assert run.code == 0, run.text
    assert_no_traceback(run)
    assert "Sent 1, failed 0" in run.out
    assert _deliveries(idp, tag) == Counter({f"{tag} lost": 1})
    (row,) = [r for r in _entries(ocli) if str(r["subject"]).startswith(tag)]
    assert row["state"] == "sent" and row["attempts"] == 1
    assert "found in Sent Items, so not resent" in str(row["last_error"])


def test_a_lost_answer_with_nothing_to_read_waits_for_a_person(
    ocli: Cli, idp: SandboxController
) -> None:
    for name in ("read", "graph"):  # SMTP only: Sent Items cannot be searched
        assert ocli("mailbox", "rm", name).code == 0
    tag = _tag()
    outbox_id = _queue(ocli, "out", f"{tag} lost")
    _lose_answers(idp, "smtp")
    run = ocli("outbox", "run")
    assert run.code == 1, run.text
    assert_no_traceback(run)
    assert "1 with unknown outcome" in run.out
    assert _deliveries(idp, tag) == Counter({f"{tag} lost": 1})  # taken once, never resent
    (row,) = _entries(ocli, "--state", "failed")
    error = str(row["last_error"])
    assert row["id"] == outbox_id and error.startswith("outcome unknown (")
    assert "before the server answered" in error and f"mailgate outbox retry {outbox_id}" in error


def test_send_now_with_a_lost_answer_says_to_look_in_sent_items(
    ocli: Cli, idp: SandboxController
) -> None:
    tag = _tag()
    _lose_answers(idp, "smtp")
    result = ocli("send", "out", "--to", DESK, "--subject", f"{tag} now", "--text", "x")
    assert result.code == 1, result.text
    assert_no_traceback(result)
    assert "may have been accepted" in result.err and "Sent Items" in result.err
    assert _deliveries(idp, tag) == Counter({f"{tag} now": 1})


def test_send_queue_and_run_with_json(ocli: Cli, idp: SandboxController) -> None:
    tag = _tag()
    queued = ocli(
        "send", "out", "--to", DESK, "--cc", f"alice@{DOMAIN}", "--subject", f"{tag} ok",
        "--text", "x", "--queue", "--json",
    )  # fmt: skip
    assert queued.code == 0, queued.text
    doc = json.loads(queued.out)
    assert doc["queued"] is True and doc["mailbox"] == "out"
    assert doc["recipients"] == [DESK, f"alice@{DOMAIN}"]
    (entry,) = [e for e in _entries(ocli) if e["id"] == doc["outbox_id"]]
    assert doc["message_id"] == entry["message_id"] and doc["message_id"].startswith("<")
    denied = _queue(ocli, "out", f"{tag} denied", "--from", f"ceo@{DOMAIN}")

    run = ocli("outbox", "run", "--json")
    assert run.code == 1, run.text
    report = json.loads(run.out)  # one document on stdout, the advice on stderr
    assert (report["sent"], report["failed"], report["unknown"]) == (1, 1, 0)
    kinds = {(e["outbox_id"], e["kind"]) for e in report["events"]}
    assert {(doc["outbox_id"], "sent"), (denied, "failed")} <= kinds
    lines = run.out.splitlines()
    events_at = lines.index('  "events": [')
    assert all(line.startswith('    {"kind": ') for line in lines[events_at + 1 : -2])
    assert "Sent 1" not in run.out and "outbox retry" in run.err
    assert_no_traceback(run)
