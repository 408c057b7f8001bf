"""Pure parsing of FindItem's query parts: Restriction, paging view, sort order and shape.

The Restriction subset (anything else is ``ErrorUnsupportedQueryFilter``)::

    IsEqualTo     message:IsRead | item:HasAttachments | message:From | message:Sender
                  | item:Subject
    Contains      item:Subject (Substring, FullString or Prefixed; matched ignoring case)
    IsGreaterThan[OrEqualTo] / IsLessThan[OrEqualTo] / IsEqualTo   item:DateTimeReceived
    And           of the above

It compiles to the same :data:`~mailgate.sandbox.graph.query.Filter` Graph's ``$filter``
uses, so both protocols match messages with one function.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from mailgate.sandbox.ews.envelope import SoapError, m, t
from mailgate.sandbox.graph.query import Condition, Field, Filter, Op, QueryError, parse_datetime

__all__ = [
    "ItemShape",
    "PageView",
    "parse_page_view",
    "parse_restriction",
    "parse_shape",
    "sort_descending",
]

_FIELDS: dict[str, Field] = {
    "message:isread": "isRead",
    "item:hasattachments": "hasAttachments",
    "item:datetimereceived": "receivedDateTime",
    "message:from": "from",
    "message:sender": "from",
    "item:subject": "subject",
}
_OPS: dict[str, Op] = {
    "IsEqualTo": "eq",
    "IsNotEqualTo": "ne",
    "IsGreaterThanOrEqualTo": "ge",
    "IsGreaterThan": "gt",
    "IsLessThanOrEqualTo": "le",
    "IsLessThan": "lt",
}


def _unsupported(detail: str) -> SoapError:
    return SoapError("ErrorUnsupportedQueryFilter", f"The restriction is not supported: {detail}")


def _field(elem: ET.Element) -> Field:
    uri = elem.find(t("FieldURI"))
    name = (uri.get("FieldURI") or "").lower() if uri is not None else ""
    if name not in _FIELDS:
        raise _unsupported(f"field {name or '(none)'}")
    return _FIELDS[name]


def _value(field: Field, text: str) -> bool | str:
    if field in ("isRead", "hasAttachments"):
        # xs:boolean also allows 1 and 0 (exchangelib writes those).
        if text.lower() not in ("true", "false", "1", "0"):
            raise SoapError("ErrorInvalidValueForProperty", f"'{text}' is not a boolean.")
        return text.lower() in ("true", "1")
    return text


def _condition(elem: ET.Element) -> list[Condition]:
    local = elem.tag.rpartition("}")[2]
    if local == "And":
        return [c for child in elem for c in _condition(child)]
    if local == "Contains":
        field = _field(elem)
        constant = elem.find(t("Constant"))
        if field != "subject" or constant is None:
            raise _unsupported("Contains is supported on item:Subject only")
        return [Condition("subject", "contains", constant.get("Value", ""))]
    if local in _OPS:
        field = _field(elem)
        constant = elem.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if constant is None:
            raise _unsupported("comparisons need a constant")
        op = _OPS[local]
        text = constant.get("Value", "")
        if field == "receivedDateTime":
            try:
                return [Condition(field, op, parse_datetime(text))]
            except QueryError as exc:
                raise SoapError("ErrorInvalidValueForProperty", exc.message) from exc
        if op not in ("eq", "ne"):
            raise _unsupported(f"{local} on {field}")
        return [Condition(field, op, _value(field, text))]
    raise _unsupported(local)


def parse_restriction(restriction: ET.Element | None) -> Filter:
    """The conditions of ``<m:Restriction>`` (empty when there is none)."""
    if restriction is None or len(restriction) == 0:
        return ()
    if len(restriction) != 1:
        raise SoapError("ErrorSchemaValidation", "A Restriction holds exactly one expression.")
    return tuple(_condition(restriction[0]))


@dataclass(frozen=True)
class PageView:
    """``IndexedPageItemView`` (or ``IndexedPageFolderView``): offset, size, base point."""

    offset: int = 0
    max_entries: int | None = None
    from_end: bool = False


def parse_page_view(operation: ET.Element) -> PageView:
    """The paging view of a FindItem/FindFolder request (no view: everything)."""
    view = operation.find(m("IndexedPageItemView"))
    if view is None:
        view = operation.find(m("IndexedPageFolderView"))
    if view is None:
        return PageView()
    try:
        offset = int(view.get("Offset", "0"))
        size = view.get("MaxEntriesReturned")
        max_entries = int(size) if size else None
    except ValueError as exc:
        raise SoapError(
            "ErrorSchemaValidation", "Offset and MaxEntriesReturned are integers."
        ) from exc
    if offset < 0 or (max_entries is not None and max_entries < 1):
        raise SoapError("ErrorInvalidIndexedPagingParameters", "Invalid paging parameters.")
    return PageView(offset, max_entries, view.get("BasePoint", "Beginning") == "End")


def sort_descending(operation: ET.Element) -> bool:
    """True unless ``SortOrder`` asks for ascending DateTimeReceived (EWS' default is newest
    first for the Inbox view clients show; an unsorted request gets the same)."""
    order = operation.find(f"{m('SortOrder')}/{t('FieldOrder')}")
    if order is None:
        return True
    return order.get("Order", "Ascending") == "Descending"


@dataclass(frozen=True)
class ItemShape:
    """What to render of an item: IdOnly/Default/AllProperties, MIME, extra field URIs."""

    base: str = "Default"
    include_mime: bool = False
    fields: frozenset[str] = frozenset()
    body_type: str = "Best"

    def wants(self, field_uri: str) -> bool:
        """True if ``field_uri`` (``item:Subject``) is to be rendered."""
        return self.base != "IdOnly" or field_uri.lower() in self.fields


def parse_shape(operation: ET.Element) -> ItemShape:
    """The ``ItemShape`` (or ``FolderShape``) of a request."""
    shape = operation.find(m("ItemShape"))
    if shape is None:
        shape = operation.find(m("FolderShape"))
    if shape is None:
        return ItemShape()
    base = shape.findtext(t("BaseShape"), "Default")
    fields = {
        (uri.get("FieldURI") or "").lower()
        for uri in shape.iterfind(f"{t('AdditionalProperties')}/{t('FieldURI')}")
    }
    include_mime = shape.findtext(t("IncludeMimeContent"), "false").lower() == "true"
    return ItemShape(
        base=base,
        include_mime=include_mime or "item:mimecontent" in fields,
        fields=frozenset(fields),
        body_type=shape.findtext(t("BodyType"), "Best"),
    )
