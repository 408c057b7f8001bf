"""One sandbox identity platform for the whole test session, plus client helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailgate.testing import SandboxController


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("sandbox")) as controller:
        yield controller


@pytest.fixture
def contoso(sandbox: SandboxController) -> dict[str, Any]:
    return sandbox.tenant("contoso")


@pytest.fixture(autouse=True)
def _trust_verify_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override Session.verify, so MSAL's verify=ca_file would be
    # ignored on machines that set them; a user's own tests need the same (docs/sandbox.md).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
