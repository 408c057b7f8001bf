"""``mailgate import`` through the real command line against the sandbox: destinations,
post-processing, oversize mail, and every error path (one readable message, nothing lost)."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mailgate.jobs.importing.webhook import verify_signature
from mailgate.secret import Secret
from tests.conftest import assert_no_traceback
from tests.jobs.conftest import Sandboxed, eml_hashes, make_message, sha

USER = "approvals"
SECRET = "hook-secret-for-tests"


def _states(s: Sandboxed) -> dict[str, int]:
    db = sqlite3.connect(s.cli.home / "state.db")
    return dict(db.execute("SELECT state, count(*) FROM processed_messages GROUP BY state"))


@pytest.fixture
def filled(sandboxed: Sandboxed) -> list[bytes]:
    sandboxed.clear(USER)
    messages = [make_message(i, attachment=i % 2 == 0) for i in range(6)]
    sandboxed.fill(USER, messages)
    sandboxed.mailbox("in", "imap", USER)
    return messages


@pytest.mark.parametrize("protocol", ["imap", "graph", "ews"])
def test_move_to_processed_creates_the_folder(
    sandboxed: Sandboxed, tmp_path: Path, protocol: str
) -> None:
    user = "servicedesk" if protocol == "ews" else USER
    sandboxed.clear(user)
    messages = [make_message(i, attachment=i == 0, tag=protocol) for i in range(4)]
    sandboxed.fill(user, messages)
    sandboxed.mailbox("in", protocol, user)
    out = tmp_path / "out"
    result = sandboxed.cli(
        "import", "in", "--to", str(out), "--after", "move", "--move-to", "Processed", "--json"
    )
    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["delivered"] == 4 and report["postprocessed"] == 4
    assert sorted(eml_hashes(out)) == sorted(sha(m) for m in messages)
    assert sandboxed.hashes(user, "inbox") == []
    assert sorted(sandboxed.hashes(user, "Processed")) == sorted(sha(m) for m in messages)
    attachments = list(out.glob("*.attachments/invoice.pdf"))
    assert len(attachments) == 1 and attachments[0].read_bytes() == b"%PDF-1.4 fake"
    again = sandboxed.cli("import", "in", "--to", str(out), "--json")
    assert json.loads(again.out)["delivered"] == 0


def test_keep_is_the_default_and_a_second_run_delivers_nothing(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = sandboxed.cli("import", "in", "--to", str(out), "--no-attachments")
    assert first.code == 0, first.text
    assert "6 delivered" in first.out and "(keep)" in first.out
    assert len(sandboxed.hashes(USER, "inbox")) == 6
    second = sandboxed.cli("import", "in", "--to", str(out), "--no-attachments", "--json")
    assert json.loads(second.out)["skipped"] == 6
    assert len(eml_hashes(out)) == 6 and not list(out.glob("*.attachments"))


def test_mark_read(sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path) -> None:
    result = sandboxed.cli("import", "in", "--to", str(tmp_path), "--after", "mark-read")
    assert result.code == 0, result.text
    assert all("\\Seen" in m.flags for m in sandboxed.box(USER).messages("inbox"))


class _Hook(BaseHTTPRequestHandler):
    status = 200
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mail", handler
    server.shutdown()


def test_webhook_signed_with_idempotency_key(
    sandboxed: Sandboxed, filled: list[bytes], hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    result = sandboxed.cli(
        "import", "in", "--webhook", url, "--after", "delete", MAILGATE_WEBHOOK_SECRET=SECRET
    )
    assert result.code == 0, result.text
    assert len(handler.received) == 6
    keys = set()
    for headers, body in handler.received:
        assert verify_signature(body, Secret(SECRET), headers["X-Mailgate-Signature"])
        payload = json.loads(body)
        assert payload["idempotency_key"] == headers["Idempotency-Key"]
        keys.add(headers["Idempotency-Key"])
        assert payload["subject"].startswith("Invoice") and "Message" in payload["text"]
        if payload["attachments"]:
            assert payload["attachments"][0]["content_base64"] == "JVBERi0xLjQgZmFrZQ=="
    assert len(keys) == 6
    assert SECRET not in result.text
    assert sandboxed.hashes(USER, "inbox") == []


def test_webhook_refusing_leaves_mail_and_marks_failed(
    sandboxed: Sandboxed, filled: list[bytes], hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    url += "?code=key-in-the-url"  # Azure Functions style: the URL carries a key
    handler.status = 500
    sandboxed.clear(USER)
    sandboxed.fill(USER, filled[:1])
    result = sandboxed.cli("import", "in", "--webhook", url, "--after", "delete")
    assert result.code == 1, result.text
    assert "HTTP 500" in result.err and "stays in the mailbox" in result.err
    assert "key-in-the-url" not in result.text and "?…" in result.text
    assert_no_traceback(result)
    assert len(handler.received) == 3  # retried, then given up
    assert sandboxed.hashes(USER, "inbox") == [sha(filled[0])]
    assert _states(sandboxed) == {"failed": 1}
    handler.status = 200
    retry = sandboxed.cli("import", "in", "--webhook", url, "--after", "delete")
    assert retry.code == 0, retry.text
    keys = {h["Idempotency-Key"] for h, _ in handler.received}
    assert len(keys) == 1  # the redelivery carries the same key
    assert sandboxed.hashes(USER, "inbox") == []


def test_a_copy_of_a_message_that_failed_is_not_post_processed(
    sandboxed: Sandboxed, filled: list[bytes], hook: tuple[str, type[_Hook]]
) -> None:
    # Two messages with the same bytes (a rule's copy): the second is a duplicate of the first;
    # when the first's delivery fails, the copy must stay in the mailbox too.
    url, handler = hook
    handler.status = 500
    sandboxed.clear(USER)
    sandboxed.fill(USER, [filled[0], filled[0]])
    result = sandboxed.cli("import", "in", "--webhook", url, "--after", "delete")
    assert result.code == 1, result.text
    assert_no_traceback(result)
    assert sandboxed.hashes(USER, "inbox") == [sha(filled[0])] * 2
    assert _states(sandboxed) == {"failed": 2}
    handler.status = 200
    retry = sandboxed.cli("import", "in", "--webhook", url, "--after", "delete")
    assert retry.code == 0, retry.text
    assert _states(sandboxed) == {"done": 2}
    assert sandboxed.hashes(USER, "inbox") == []


def test_command_gets_the_eml_path(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    log = tmp_path / "log"
    script = tmp_path / "take.py"
    script.write_text(
        "import sys, pathlib\n"
        f"pathlib.Path({str(log)!r}).open('ab').write(pathlib.Path(sys.argv[-1]).read_bytes())\n"
    )
    command = f"{sys.executable} {script}"
    result = sandboxed.cli("import", "in", "--command", command, "--after", "delete")
    assert result.code == 0, result.text
    assert log.read_bytes().count(b"Message-ID: <import-") == 6
    assert sandboxed.hashes(USER, "inbox") == []


def test_command_inherits_no_secret(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    dump = tmp_path / "env.json"
    script = tmp_path / "env.py"
    script.write_text(
        f"import json, os; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    )
    sandboxed.clear(USER)
    sandboxed.fill(USER, filled[:1])
    secrets = {
        "MAILGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "MAILGATE_ALERT_SECRET": "alert-key-0001",
        "HOOK_KEY": "hook-key-0002",  # named by the settings file, so mailgate's own
    }
    config = sandboxed.cli.home / "config.toml"
    config.write_text('[import]\nwebhook_secret = "env:HOOK_KEY"\n', "utf-8")
    result = sandboxed.cli("import", "in", "--command", f"{sys.executable} {script}", **secrets)
    assert result.code == 0, result.text
    env = json.loads(dump.read_text())
    assert env["MAILGATE_JOB"] and env["MAILGATE_IDEMPOTENCY_KEY"]
    leaked = {k for k, v in env.items() if v in secrets.values() or k in secrets}
    assert leaked == set(), leaked


def test_a_second_run_of_the_same_job_is_refused(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    from mailgate.store import open_store

    store = open_store(f"sqlite:///{sandboxed.cli.home / 'state.db'}")
    with store.exclusive("import:nightly:in") as held:
        assert held
        result = sandboxed.cli("import", "in", "--to", str(tmp_path / "out"), "--job", "nightly")
    store.close()
    assert result.code == 1, result.text
    assert "'nightly' of mailbox 'in' is already running" in result.err
    assert_no_traceback(result)
    assert len(sandboxed.hashes(USER, "inbox")) == len(filled)
    assert not list((tmp_path / "out").glob("*.eml"))


def test_command_failing_leaves_mail(sandboxed: Sandboxed, filled: list[bytes]) -> None:
    result = sandboxed.cli("import", "in", "--command", "false", "--after", "delete")
    assert result.code == 1, result.text
    assert "command exited with 1" in result.err
    assert_no_traceback(result)
    assert len(sandboxed.hashes(USER, "inbox")) == 6
    assert _states(sandboxed) == {"failed": 6}


@pytest.mark.parametrize("protocol", ["imap", "graph"])
def test_oversize_mail_is_set_aside_and_the_rest_imported(
    sandboxed: Sandboxed, tmp_path: Path, protocol: str
) -> None:
    sandboxed.clear(USER)
    small = [make_message(i, tag="small") for i in range(3)]
    big = make_message(99, size=50_000, tag="big")
    sandboxed.fill(USER, [small[0], big, *small[1:]])
    sandboxed.mailbox("in", protocol, USER)
    out = tmp_path / "out"
    result = sandboxed.cli(
        "import", "in", "--to", str(out), "--max-size", "20KB", "--after", "delete"
    )
    assert result.code == 0, result.text
    assert "1 oversize set aside" in result.out and "mailgate-oversize" in result.err
    assert sorted(eml_hashes(out)) == sorted(sha(m) for m in small)
    assert sandboxed.hashes(USER, "mailgate-oversize") == [sha(big)]
    assert sandboxed.hashes(USER, "inbox") == []


def test_helper_connections_share_a_large_import(sandboxed: Sandboxed, tmp_path: Path) -> None:
    # Small batches make 40 messages a large import: one helper process with its own IMAP
    # connection to the sandbox (trust rebuilt from the sandbox CA) fetches half of each batch.
    sandboxed.clear(USER)
    messages = [make_message(i, attachment=i % 3 == 0, tag="par") for i in range(40)]
    sandboxed.fill(USER, messages)
    sandboxed.mailbox("in", "imap", USER)
    out = tmp_path / "out"
    args = ["import", "in", "--to", str(out), "--batch-size", "10", "--json"]
    result = sandboxed.cli(*args, "--connections", "2", "--after", "mark-read")
    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["connections"] == 2 and report["delivered"] == 40 and not report["failed"]
    assert sorted(eml_hashes(out)) == sorted(sha(m) for m in messages)  # each once, intact
    attachments = list(out.glob("*.attachments/invoice.pdf"))
    assert len(attachments) == 14 and {a.read_bytes() for a in attachments} == {b"%PDF-1.4 fake"}
    assert _states(sandboxed) == {"done": 40}
    assert all("\\Seen" in m.flags for m in sandboxed.box(USER).messages("inbox"))
    assert not list(out.glob(".mailgate-*")) and not list(out.glob(".*.part"))
    one = sandboxed.cli(*args, "--connections", "1", "--job", "single")
    assert json.loads(one.out)["connections"] == 1


ERRORS = {
    "unknown mailbox": (["nosuch", "--to", "{out}"], 2, "no mailbox named 'nosuch'"),
    "no connections": (["in", "--to", "{out}", "--connections", "0"], 2, "connections"),
    "too many connections": (["in", "--to", "{out}", "--connections", "9"], 2, "connections"),
    "bad --after": (["in", "--to", "{out}", "--after", "shred"], 2, "keep, mark-read, move"),
    "permanent without confirmation": (
        ["in", "--to", "{out}", "--after", "permanent-delete"],
        2,
        "--after delete",
    ),
    "move without folder": (["in", "--to", "{out}", "--after", "move"], 2, "--move-to"),
    "no destination": (["in"], 2, "--to DIR, --webhook URL or --command CMD"),
    "unwritable directory": (["in", "--to", "{file}/out"], 1, "Cannot write into"),
    "missing program": (["in", "--command", "no-such-program-xyz"], 2, "--command"),
    "bad webhook": (["in", "--webhook", "ftp://example.com"], 2, "--webhook"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_one_readable_message(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path, case: str
) -> None:
    args, code, words = ERRORS[case]
    (tmp_path / "file").write_text("not a directory")
    values = {"out": str(tmp_path / "out"), "file": str(tmp_path / "file")}
    result = sandboxed.cli("import", *[a.format(**values) for a in args])
    assert result.code == code, result.text
    assert words in result.err, result.err
    assert_no_traceback(result)
    assert len(sandboxed.hashes(USER, "inbox")) == 6  # nothing changed in the mailbox


def test_permanent_delete_from_global_config_is_refused(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    sandboxed.cli.home.mkdir(exist_ok=True)
    (sandboxed.cli.home / "config.toml").write_text(
        '[import]\nafter = "permanent-delete"\nconfirm_permanent_delete = true\n'
    )
    result = sandboxed.cli("import", "in", "--to", str(tmp_path), "--yes-permanently-delete")
    assert result.code == 2, result.text
    assert "shared default" in result.err and "--after delete" in result.err
    assert len(sandboxed.hashes(USER, "inbox")) == 6


def test_permanent_delete_named_and_confirmed(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    result = sandboxed.cli(
        "import", "in", "--to", str(tmp_path), "--after", "permanent-delete",
        "--yes-permanently-delete",
    )  # fmt: skip
    assert result.code == 0, result.text
    assert sandboxed.hashes(USER, "inbox") == [] and sandboxed.hashes(USER, "deleteditems") == []
    assert len(eml_hashes(tmp_path)) == 6


def test_pop3_can_only_keep_or_delete_for_good(
    sandboxed: Sandboxed, filled: list[bytes], tmp_path: Path
) -> None:
    sandboxed.mailbox("pop", "pop", USER)
    result = sandboxed.cli("import", "pop", "--to", str(tmp_path), "--after", "delete")
    assert result.code == 2, result.text
    assert "POP3 can only keep messages or delete them for good" in result.err
    assert_no_traceback(result)
    assert not list(tmp_path.glob("*.eml"))  # refused before anything was fetched


class _CuttingProxy:
    """A TCP proxy to the sandbox's IMAP port that drops the connection after ``limit`` bytes
    from the server (``limit`` None: pass everything)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.limit: int | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.limit
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def test_server_drop_mid_import_then_resume(sandboxed: Sandboxed, tmp_path: Path) -> None:
    sandboxed.clear(USER)
    messages = [make_message(i, size=3000, tag="drop") for i in range(40)]
    sandboxed.fill(USER, messages)
    imap_port = int(sandboxed.idp.description["mail"]["imap"]["port"])
    proxy = _CuttingProxy(imap_port)
    result = sandboxed.cli(
        "mailbox", "add", "cut", "--credential", "daemon", "--protocol", "imap",
        "--address", f"{USER}@contoso.onmicrosoft.com", "--server", f"127.0.0.1:{proxy.port}",
        "--ca-file", sandboxed.idp.ca_file,
    )  # fmt: skip
    assert result.code == 0, result.text
    out = tmp_path / "out"
    args = ["import", "cut", "--to", str(out), "--after", "delete", "--batch-size", "10"]
    proxy.limit = 60_000  # a few batches in, the connection drops
    dropped = sandboxed.cli(*args)
    assert dropped.code == 1, dropped.text
    assert "error:" in dropped.err
    assert_no_traceback(dropped)
    assert 0 < len(sandboxed.hashes(USER, "inbox")) < 40
    proxy.limit = None
    resumed = sandboxed.cli(*args)
    assert resumed.code == 0, resumed.text
    assert sorted(eml_hashes(out)) == sorted(sha(m) for m in messages)
    assert sandboxed.hashes(USER, "inbox") == []
