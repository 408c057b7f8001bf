"""IMAP command arguments: quoting, literals, sequence sets, dates, SEARCH plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailgate.protocols.base import SearchCriteria
from mailgate.protocols.imap.commands import (
    Literal,
    astring,
    imap_date,
    join_parts,
    mailbox_argument,
    search_plan,
    sequence_set,
)


def test_astring_quotes_or_uses_a_literal() -> None:
    assert astring("plain") == b'"plain"'
    assert astring('say "hi" \\ now') == b'"say \\"hi\\" \\\\ now"'
    assert astring("") == b'""'
    assert astring("Müller") == Literal("Müller".encode())
    assert astring("a\r\nb") == Literal(b"a\r\nb")
    assert repr(Literal(b"secret body")) == "Literal(11 bytes)"


def test_mailbox_argument_encodes_and_maps_delimiter() -> None:
    assert mailbox_argument("inbox", "/") == b'"INBOX"'
    assert mailbox_argument("Kunden/Entwürfe", "/") == b'"Kunden/Entw&APw-rfe"'
    assert mailbox_argument("Kunden/Entwürfe", ".") == b'"Kunden.Entw&APw-rfe"'
    assert mailbox_argument('A "q"', None) == b'"A \\"q\\""'


def test_sequence_set() -> None:
    assert sequence_set([3, 1, 2, 7, 9, 10, 10]) == b"1:3,7,9:10"
    assert sequence_set([5]) == b"5"
    with pytest.raises(ValueError):
        sequence_set([])


def test_imap_date_is_the_utc_day() -> None:
    assert imap_date(datetime(2024, 1, 5, 10, tzinfo=UTC)) == b"05-Jan-2024"
    plus2 = timezone(timedelta(hours=2))
    assert imap_date(datetime(2024, 12, 1, 1, tzinfo=plus2)) == b"30-Nov-2024"


def test_empty_criteria_search_all() -> None:
    plan = search_plan(SearchCriteria())
    assert plan.arguments == [b"ALL"] and not plan.needs_fetch


def test_full_criteria() -> None:
    plan = search_plan(
        SearchCriteria(
            unread=True,
            from_address="vendor@example.com",
            subject_contains='Invoice "4711"',
            since=datetime(2024, 1, 5, tzinfo=UTC),
            before=datetime(2024, 2, 1, tzinfo=UTC),
        )
    )
    assert join_parts(plan.arguments) == [
        b'UNSEEN FROM "vendor@example.com" SUBJECT "Invoice \\"4711\\"" '
        b"SINCE 05-Jan-2024 BEFORE 01-Feb-2024"
    ]
    assert not plan.needs_fetch


def test_read_and_non_ascii_uses_charset_and_literal() -> None:
    plan = search_plan(SearchCriteria(unread=False, subject_contains="Rechnung für"))
    assert plan.arguments[:4] == [b"CHARSET", b"UTF-8", b"SEEN", b"SUBJECT"]
    assert plan.arguments[4] == Literal("Rechnung für".encode())
    assert join_parts(plan.arguments) == [
        b"CHARSET UTF-8 SEEN SUBJECT ",
        Literal("Rechnung für".encode()),
    ]


def test_times_within_a_day_are_filtered_exactly() -> None:
    since = datetime(2024, 1, 5, 10, 30, tzinfo=UTC)
    before = datetime(2024, 1, 9, 8, tzinfo=UTC)
    plan = search_plan(SearchCriteria(since=since, before=before, has_attachments=True))
    assert plan.arguments == [b"SINCE", b"05-Jan-2024", b"BEFORE", b"10-Jan-2024"]
    assert (plan.exact_since, plan.exact_before, plan.has_attachments) == (since, before, True)
    assert plan.needs_fetch


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        search_plan(SearchCriteria(since=datetime(2024, 1, 1)))
