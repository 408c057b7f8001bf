"""The sandbox's EWS writes mail text with control characters as Exchange Online is reported to."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from mailgate.sandbox.ews.envelope import TNS, envelope, fault, sub, t


def _reply_with_subject(subject: str) -> bytes:
    message = ET.Element(t("Message"))
    sub(message, t("Subject"), subject)
    sub(message, t("ItemId"), Id=f"id{subject}")
    return envelope([message])


def test_forbidden_controls_become_references_not_raw_bytes() -> None:
    body = _reply_with_subject("Esc\x1b[31m bell\x07 nul\x00 vt\x0b us\x1f del\x7f csi\x9b\ttab")
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", body)
    assert b"Esc&#x1B;[31m bell&#x7; nul&#x0; vt&#xB; us&#x1F; del\x7f csi\xc2\x9b\ttab" in body
    # Strict parsers refuse such references, as they refuse Exchange's replies.
    with pytest.raises(ET.ParseError, match="invalid character"):
        ET.fromstring(body)  # noqa: S314 - our own output


def test_attribute_values_and_faults_too() -> None:
    assert b"&#x1B;" in _reply_with_subject("a\x1bb").split(b"Id=", 1)[1]
    assert b"&#x7;" in fault("ErrorInternalServerError", "boom\x07")


def test_text_without_controls_is_byte_for_byte_as_before() -> None:
    body = _reply_with_subject("Invoice 4711 <&> Grüße")
    root = ET.fromstring(body)  # noqa: S314 - our own output
    assert root.find(f".//{{{TNS}}}Subject").text == "Invoice 4711 <&> Grüße"  # type: ignore[union-attr]
