"""Pure SOAP 1.1 plumbing for the sandbox's EWS: parse a request, build envelopes and faults.

A request is ``<s:Envelope><s:Header>…</s:Header><s:Body><m:Operation>…`` with the
``m`` (messages) and ``t`` (types) namespaces of Exchange 2006. :func:`parse_request` pulls out
the operation element, the ``ExchangeImpersonation`` target and ``RequestServerVersion``.
Every response carries ``ServerVersionInfo`` in its header, as Exchange Online's do (clients
such as exchangelib learn the server version from it). Documents with a DOCTYPE are refused
before parsing, so entity expansion never happens (the stdlib parser, no extra dependency).

Mail text goes out as Exchange Online is reported to send it: control characters that XML 1.0
forbids are not removed but written as numeric character references (``&#x1B;``), which strict
parsers refuse (see docs/sandbox.md; a best guess from client bug reports, not a documented
fact). ElementTree would write them raw; :func:`_as_exchange_writes` turns them into references.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ENS",
    "MNS",
    "SERVER_VERSION",
    "SOAP12NS",
    "SOAPNS",
    "TNS",
    "Impersonation",
    "SoapError",
    "SoapRequest",
    "envelope",
    "fault",
    "m",
    "parse_request",
    "response",
    "response_message",
    "sub",
    "t",
]

SOAPNS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12NS = "http://www.w3.org/2003/05/soap-envelope"
MNS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TNS = "http://schemas.microsoft.com/exchange/services/2006/types"
ENS = "http://schemas.microsoft.com/exchange/services/2006/errors"

# The prefixes Exchange uses; registering them only affects how we serialise.
for _prefix, _uri in (("s", SOAPNS), ("m", MNS), ("t", TNS), ("e", ENS)):
    ET.register_namespace(_prefix, _uri)

# What Exchange Online reports today: build 15.20, and a "V2018_01_08" schema name.
SERVER_VERSION = {
    "MajorVersion": "15",
    "MinorVersion": "20",
    "MajorBuildNumber": "8769",
    "MinorBuildNumber": "21",
    "Version": "V2018_01_08",
}


class SoapError(ValueError):
    """The request cannot be read as an EWS SOAP request; ``code`` is the EWS response code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Impersonation:
    """The mailbox named by ``ExchangeImpersonation/ConnectingSID``."""

    kind: str  # PrimarySmtpAddress, SmtpAddress, PrincipalName or SID
    value: str


@dataclass(frozen=True)
class SoapRequest:
    """One parsed EWS request."""

    operation: str
    body: ET.Element
    impersonation: Impersonation | None
    server_version: str | None


def m(name: str) -> str:
    """A qualified name in the messages namespace."""
    return f"{{{MNS}}}{name}"


def t(name: str) -> str:
    """A qualified name in the types namespace."""
    return f"{{{TNS}}}{name}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append a child element with optional text and attributes; returns it."""
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def parse_request(data: bytes) -> SoapRequest:
    """Parse an EWS request; SoapError(ErrorSchemaValidation / ErrorInvalidRequest) if bad."""
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SoapError("ErrorSchemaValidation", "DTDs are not allowed in EWS requests.")
    try:
        root = ET.fromstring(data)  # noqa: S314 - DTDs are refused above
    except ET.ParseError as exc:
        raise SoapError(
            "ErrorSchemaValidation", f"The request failed schema validation: {exc}"
        ) from exc
    ns = SOAPNS if root.tag == f"{{{SOAPNS}}}Envelope" else SOAP12NS
    if root.tag != f"{{{ns}}}Envelope":
        raise SoapError("ErrorInvalidRequest", "The request is not a SOAP envelope.")
    body = root.find(f"{{{ns}}}Body")
    if body is None or len(body) == 0:
        raise SoapError("ErrorInvalidRequest", "The SOAP body is empty.")
    operation = body[0]
    if not operation.tag.startswith(f"{{{MNS}}}"):
        raise SoapError("ErrorInvalidRequest", f"Unknown request element {operation.tag}.")
    header = root.find(f"{{{ns}}}Header")
    impersonation = None
    version = None
    if header is not None:
        sid = header.find(f"{t('ExchangeImpersonation')}/{t('ConnectingSID')}")
        if sid is not None:
            if len(sid) != 1 or not (sid[0].text or "").strip():
                raise SoapError(
                    "ErrorInvalidExchangeImpersonationHeaderData",
                    "The ExchangeImpersonation header must name exactly one account.",
                )
            impersonation = Impersonation(
                sid[0].tag.rpartition("}")[2], (sid[0].text or "").strip()
            )
        requested = header.find(t("RequestServerVersion"))
        if requested is not None:
            version = requested.get("Version")
    return SoapRequest(operation.tag[len(MNS) + 2 :], operation, impersonation, version)


_FORBIDDEN_RAW = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _as_exchange_writes(document: bytes) -> bytes:
    # Only text and attribute values can hold such bytes (the tags are ours), and in UTF-8
    # these bytes are always the characters themselves, never part of a longer sequence.
    return _FORBIDDEN_RAW.sub(lambda match: b"&#x%X;" % match[0][0], document)


def _server_version(header: ET.Element) -> None:
    ET.SubElement(header, t("ServerVersionInfo"), SERVER_VERSION)


def envelope(body_content: Iterable[ET.Element]) -> bytes:
    """A response envelope with ``ServerVersionInfo`` in the header."""
    root = ET.Element(f"{{{SOAPNS}}}Envelope")
    _server_version(ET.SubElement(root, f"{{{SOAPNS}}}Header"))
    body = ET.SubElement(root, f"{{{SOAPNS}}}Body")
    body.extend(body_content)
    return _as_exchange_writes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def response_message(
    operation: str,
    code: str = "NoError",
    text: str = "",
    children: Iterable[ET.Element] = (),
    **attrs: str,
) -> ET.Element:
    """``<m:{operation}ResponseMessage ResponseClass=…>`` with its ResponseCode."""
    ok = code == "NoError"
    elem = ET.Element(
        m(f"{operation}ResponseMessage"), {"ResponseClass": "Success" if ok else "Error", **attrs}
    )
    if not ok:
        sub(elem, m("MessageText"), text or code)
    sub(elem, m("ResponseCode"), code)
    if not ok:
        sub(elem, m("DescriptiveLinkKey"), "0")
    elem.extend(children)
    return elem


def response(operation: str, messages: Iterable[ET.Element]) -> ET.Element:
    """``<m:{operation}Response><m:ResponseMessages>…``."""
    elem = ET.Element(m(f"{operation}Response"))
    ET.SubElement(elem, m("ResponseMessages")).extend(messages)
    return elem


def fault(code: str, message: str, values: dict[str, str] | None = None) -> bytes:
    """A SOAP fault the way Exchange sends it (HTTP 500): code, message and MessageXml values.

    ``ErrorServerBusy`` carries ``{"BackOffMilliseconds": "N"}`` here.
    """
    root = ET.Element(f"{{{SOAPNS}}}Envelope")
    _server_version(ET.SubElement(root, f"{{{SOAPNS}}}Header"))
    body = ET.SubElement(root, f"{{{SOAPNS}}}Body")
    elem = ET.SubElement(body, f"{{{SOAPNS}}}Fault")
    # Exchange writes the code as a QName with its own prefix declared on the element.
    sub(elem, "faultcode", f"a:{code}", **{"xmlns:a": TNS})
    sub(elem, "faultstring", message)
    detail = sub(elem, "detail")
    sub(detail, f"{{{ENS}}}ResponseCode", code)
    sub(detail, f"{{{ENS}}}Message", message)
    if values:
        xml = sub(detail, t("MessageXml"))
        for name, value in values.items():
            sub(xml, t("Value"), value, Name=name)
    return _as_exchange_writes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
