"""The pure parts of helper connections: frames, how many helpers, errors across the pipe."""

from __future__ import annotations

import os
import pickle

import pytest

from mailgate.errors import ConfigurationError, InvalidInputError, MailgateError, ProtocolError
from mailgate.protocols.base import MailAuthenticationError, Security, ThrottledError
from mailgate.protocols.imap import parallel as imap_parallel
from mailgate.protocols.imap.adapter import UidValidityChangedError
from mailgate.protocols.imap.parallel import (
    ConnectionRecipe,
    decode_frame_size,
    encode_frame,
    helpers_for,
    portable_error,
    restore_error,
)


def test_frames_round_trip() -> None:
    for value in (None, ("ready", None), {"a": [1, 2, b"\x00\xff"]}, "x" * 100_000):
        frame = encode_frame(value)
        size = decode_frame_size(frame[:8])
        assert size == len(frame) - 8
        assert pickle.loads(frame[8:]) == value  # noqa: S301 - our own bytes


@pytest.mark.parametrize(
    ("messages", "connections", "expected"),
    [
        (10_000, 2, 1),  # the benchmark's save: one helper
        (10_000, 8, 5),  # no more helpers than pairs of batches
        (1_999, 4, 0),  # under two batches a helper is not worth its start
        (2_000, 4, 1),
        (50_000, 3, 2),  # never more than connections - 1
        (0, 2, 0),
        (10_000, 1, 0),
    ],
)
def test_helpers_for(messages: int, connections: int, expected: int) -> None:
    assert helpers_for(messages, connections, 1000) == expected


@pytest.mark.parametrize(("cores", "expected"), [(1, 0), (2, 0), (3, 0), (4, 1), (16, 1)])
def test_light_work_gets_helpers_only_with_cores_to_spare(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    monkeypatch.setattr(imap_parallel, "usable_cores", lambda: cores)
    assert helpers_for(10_000, 2, 1000, heavy=False) == expected
    assert helpers_for(10_000, 2, 1000, heavy=True) == 1  # attachment extraction: always


def test_usable_cores_follows_the_affinity() -> None:
    assert 1 <= imap_parallel.usable_cores() <= (os.cpu_count() or 1)


def test_errors_keep_their_class_message_and_remedy() -> None:
    for error in (
        ConfigurationError("bad", "fix it"),
        MailAuthenticationError("refused", "grant access", reply="NO"),
        UidValidityChangedError("renumbered", "search again"),
        ProtocolError("odd reply", "report it"),
    ):
        back = restore_error(*portable_error(error))
        assert type(back) is type(error)
        assert (back.message, back.remedy) == (error.message, error.remedy)
        assert str(back) == str(error)


def test_errors_with_their_own_constructor_and_attributes_survive_the_pipe() -> None:
    # InvalidInputError takes (field, expected, got): rebuilt through its __init__ the message
    # used to come back mangled. Extra attributes (reply, retry_after, field) come along.
    invalid = InvalidInputError("--folder", "a folder name", "x\r\ny")
    back = restore_error(*portable_error(invalid))
    assert type(back) is InvalidInputError and str(back) == str(invalid)
    assert (back.field, back.expected) == ("--folder", "a folder name")
    busy = ThrottledError("busy", "wait", retry_after=7.5)
    again = restore_error(*portable_error(busy))
    assert type(again) is ThrottledError and again.retry_after == 7.5
    refused = restore_error(*portable_error(MailAuthenticationError("no", "fix", reply="NO x")))
    assert isinstance(refused, MailAuthenticationError) and refused.reply == "NO x"


def test_unknown_and_foreign_errors_become_readable_mailgate_errors() -> None:
    name, message, remedy, extra = portable_error(KeyError("boom"))
    assert extra == {}
    back = restore_error(name, message, remedy)
    assert isinstance(back, ProtocolError) and "KeyError" in back.message
    assert "--connections 1" in back.remedy
    unknown = restore_error("NoSuchError", "something", "do this")
    assert type(unknown) is MailgateError and str(unknown) == "something Fix: do this"
    # A name that is not an exception class (or not a mailgate one) is not instantiated.
    assert type(restore_error("Security", "m", "r")) is MailgateError
    assert type(restore_error("KeyError", "m", "r")) is MailgateError


def test_the_recipe_never_shows_its_token() -> None:
    recipe = ConnectionRecipe(
        "alice@contoso.com", "127.0.0.1", 993, Security.TLS, "XOAUTH2", 30.0, (), "eyJ.secret"
    )
    assert "eyJ" not in repr(recipe) and "eyJ" not in str(recipe)
