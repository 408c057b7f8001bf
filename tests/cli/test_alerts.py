"""Webhook alerts through the real CLI, received by a real HTTP server on 127.0.0.1:
``creds expiring --webhook`` and the MAILGATE_ALERT_WEBHOOK alert for a dead refresh token."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, assert_no_traceback

TID = "contoso.onmicrosoft.com"
CID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECRET = "client-secret-value-never-sent"
KEY = "shared-hmac-key"


@dataclass
class Receiver:
    """A webhook endpoint that records each POST and answers ``status``."""

    url: str
    status: int = 204
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def json(self, index: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.received[index][1])
        return data


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            box.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(box.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


def _add(cli: Cli, name: str, expires: str) -> None:
    result = cli(
        "creds", "add", name, "--kind", "client-secret", "--tenant", TID, "--client-id", CID,
        "--secret-stdin", "--secret-expires", expires, input=SECRET + "\n",
    )  # fmt: skip
    assert result.code == 0, result.text


def _signature(body: bytes) -> str:
    return "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()


def test_expiring_posts_one_signed_alert(cli: Cli, receiver: Receiver) -> None:
    _add(cli, "soon", "10d")
    _add(cli, "gone", "2020-01-01")
    _add(cli, "later", "300d")
    result = cli("creds", "expiring", "--webhook", receiver.url, MAILGATE_ALERT_SECRET=KEY)
    assert result.code == 1, result.text
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["content-type"] == "application/json"
    assert hmac.compare_digest(headers["x-mailgate-signature"], _signature(body))
    alert = receiver.json()
    assert alert["event"] == "credentials_expiring" and alert["window_days"] == 30
    rows = {c["name"]: c for c in alert["credentials"]}
    assert set(rows) == {"soon", "gone"}
    assert rows["gone"]["expired"] is True and rows["soon"]["days_left"] in (9, 10)
    assert SECRET.encode() not in body and KEY.encode() not in body


def test_nothing_expiring_sends_nothing_and_unsigned_without_key(
    cli: Cli, receiver: Receiver
) -> None:
    _add(cli, "later", "300d")
    assert cli("creds", "expiring", "--webhook", receiver.url).code == 0
    assert receiver.received == []
    assert cli("creds", "expiring", "--within", "365d", "--webhook", receiver.url).code == 1
    assert "x-mailgate-signature" not in receiver.received[0][0]


def test_a_failing_webhook_is_a_warning_not_a_crash(cli: Cli, receiver: Receiver) -> None:
    _add(cli, "soon", "3d")
    receiver.status = 500
    refused = cli("creds", "expiring", "--webhook", receiver.url)
    assert refused.code == 1 and "soon" in refused.out
    assert "not delivered to the webhook: the webhook answered HTTP 500" in refused.err
    down = cli("creds", "expiring", "--webhook", "http://127.0.0.1:9/nothing-listens")
    assert down.code == 1 and "not delivered" in down.err
    assert_no_traceback(down)
    bad = cli("creds", "expiring", "--webhook", "ftp://example.com/x")
    assert bad.code == 2 and bad.err.startswith("error: --webhook: expected an http(s) URL")


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("alerts-idp")) as controller:
        yield controller


def test_dead_refresh_token_alerts_the_configured_webhook(
    cli: Cli, idp: SandboxController, receiver: Receiver
) -> None:
    cli.env["MAILGATE_SANDBOX"] = str(Path(idp.state_dir) / "sandbox.json")
    alice = idp.user("alice")
    added = cli(
        "creds", "add", "desk", "--kind", "password", "--cloud", "sandbox",
        "--tenant", idp.tenant("contoso")["id"],
        "--client-id", idp.app("mailgate-public")["client_id"],
        "--username", alice["upn"], "--secret-stdin", input=alice["password"] + "\n",
    )  # fmt: skip
    assert added.code == 0, added.text
    env = {"MAILGATE_ALERT_WEBHOOK": receiver.url, "MAILGATE_ALERT_SECRET": KEY}
    assert cli("token", "desk", **env).code == 0
    assert receiver.received == [], "a working refresh token raises no alert"
    idp.revoke_sessions(alice["upn"])
    failed = cli("token", "desk", "--force-refresh", **env)
    assert failed.code == 1, failed.text
    assert_no_traceback(failed)
    assert "50173" in failed.err or "revoked" in failed.err
    ((headers, body),) = receiver.received
    assert hmac.compare_digest(headers["x-mailgate-signature"], _signature(body))
    alert = receiver.json()
    assert alert["event"] == "refresh_token_failed" and alert["code"] == 50173
    assert alert["credential"] == "desk" and alert["user"] == alice["upn"]
    assert alice["password"].encode() not in body and b"eyJ" not in body

    # The alert is best effort: an unreachable webhook changes nothing about the command.
    unreachable = cli(
        "token", "desk", "--force-refresh", MAILGATE_ALERT_WEBHOOK="http://127.0.0.1:9/x"
    )
    assert unreachable.code == failed.code
    # Same diagnosis and remedy; only the trace and correlation ids of the request differ.
    assert unreachable.err.split("trace id")[0] == failed.err.split("trace id")[0]
