"""Dates in the RFC 5322 form are read directly, exactly as the stdlib reads them."""

from __future__ import annotations

import email.utils
from datetime import datetime

import pytest

from mailgate.mail.headers import parse_date

DATES = [
    "Mon, 01 Jan 2024 10:05:00 +0000",
    "Mon, 1 Jan 2024 10:05:00 +0000",
    "1 Jan 2024 10:05 +0100",
    "Tue, 29 Feb 2028 23:59:59 -0930",
    "Wed, 31 Dec 1999 00:00:00 +1400",
    "Thu, 02 JAN 2025 08:00:00 +0530",
    "Fri, 03 jan 2025 08:00:00 -0000",  # no zone: a naive datetime
    "Fri,03 Jan 2025 08:00:00 +0200",
    "Sat, 31 Feb 2024 10:00:00 +0000",  # no such day
    "Sun, 01 Jan 2024 25:00:00 +0000",  # no such hour
    "Sun, 01 Jan 2024 10:00:61 +0000",
    "Mon, 01 Jan 2024 10:00:00 +2400",  # a day's offset
    "Mon, 01 Xyz 2024 10:00:00 +0000",
    "Mon, 01 Jan 24 10:00:00 +0000",  # two-digit year: the stdlib's rules
    "Mon, 01 Jan 2024 10:00:00 GMT",
    "Mon, 01 Jan 2024 10:00:00 +0000 (UTC)",
    "Monday, 01 January 2024 10:00:00 +0000",
    "2024-01-01T10:00:00Z",
    "",
    "garbage",
]


def _stdlib(value: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


@pytest.mark.parametrize("value", DATES)
def test_same_as_the_stdlib(value: str) -> None:
    ours, theirs = parse_date(value), _stdlib(value)
    assert ours == theirs
    if ours is not None and theirs is not None:
        assert ours.utcoffset() == theirs.utcoffset() and repr(ours) == repr(theirs)
