"""Which failures leave a submission's outcome open (pure parts): the SMTP DATA payload, and
the HTTP failures after which the server may have acted on the request."""

from __future__ import annotations

import smtplib

import httpx
import pytest

from mailgate.errors import MailgateError, ProtocolError, TransportError
from mailgate.protocols.base import SubmissionUnknownError
from mailgate.protocols.ews.replies import EwsError
from mailgate.protocols.graph.shapes import GraphError
from mailgate.protocols.smtp import data_payload
from mailgate.protocols.transport import may_have_arrived, submission

REQUEST = httpx.Request("POST", "https://graph.example/v1.0/users/a/sendMail")


@pytest.mark.parametrize(
    "mime",
    [
        b"Subject: x\r\n\r\nbody\r\n",
        b"Subject: x\r\n\r\n.leading dot\r\n..two\r\nlast line without CRLF",
        b".\r\n",
        b"",
        b"a\n.b\n",  # LF-only lines: dots after LF are doubled too, as smtplib does
    ],
)
def test_data_payload_is_what_smtplib_sends(mime: bytes) -> None:
    expected = smtplib._quote_periods(mime)  # type: ignore[attr-defined]
    if expected[-2:] != b"\r\n":
        expected += b"\r\n"
    assert data_payload(mime) == expected + b".\r\n"


def _from(cause: Exception) -> TransportError:
    try:
        raise TransportError("HTTP request failed", "retry") from cause
    except TransportError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "open_outcome"),
    [
        (_from(httpx.ReadTimeout("slow", request=REQUEST)), True),
        (_from(httpx.ReadError("reset", request=REQUEST)), True),
        (_from(httpx.RemoteProtocolError("no response", request=REQUEST)), True),
        (_from(httpx.ConnectError("refused", request=REQUEST)), False),
        (_from(httpx.ConnectTimeout("slow", request=REQUEST)), False),
        (_from(httpx.WriteError("broken", request=REQUEST)), False),
        (GraphError("gateway timeout", status=504), True),
        (GraphError("bad gateway", status=502), False),
        (GraphError("throttled", status=429), False),
        (EwsError("EWS answered HTTP 504", code="HTTP 504"), True),
        (EwsError("EWS answered HTTP 500", code="HTTP 500"), False),
        (ProtocolError("anything else"), False),
    ],
)
def test_may_have_arrived(error: MailgateError, open_outcome: bool) -> None:
    assert may_have_arrived(error) is open_outcome


def test_submission_turns_only_open_outcomes_into_submission_unknown() -> None:
    with pytest.raises(SubmissionUnknownError) as caught, submission("Microsoft Graph"):
        raise GraphError("Graph answered 504", status=504)
    assert "may have accepted the message" in caught.value.message
    assert "Sent Items" in caught.value.remedy
    with pytest.raises(GraphError), submission("Microsoft Graph"):
        raise GraphError("Graph answered 400", status=400)
