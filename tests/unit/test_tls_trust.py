"""TLS trust is built once per set of extra CAs, in a thread, and its errors reach the caller."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from mailgate.connect import MailboxConnector


def test_one_context_per_set_of_extra_cas_and_bad_files_raise(tmp_path: Path) -> None:
    connector = MailboxConnector(provider=Any)  # type: ignore[arg-type]  # unused here
    first = connector._context(()).result(timeout=30)
    assert isinstance(first, ssl.SSLContext) and first.verify_mode is ssl.CERT_REQUIRED
    assert connector._context(()).result() is first
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        connector._context((str(bad),)).result(timeout=30)
    with pytest.raises(FileNotFoundError):
        connector._context((str(tmp_path / "missing.pem"),)).result(timeout=30)
