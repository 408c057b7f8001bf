"""AADSTS error results become typed exceptions with a diagnosis and a remedy."""

from __future__ import annotations

import pytest

from mailgate import errors
from mailgate.identity.aadsts import CATALOGUE, error_from_result, parse_aadsts_code

REQUIRED = [
    50034,
    50053,
    50055,
    50057,
    50076,
    50079,
    50126,
    50158,
    50173,
    53003,
    65001,
    70011,
    700016,
    700024,
    7000215,
    7000218,
    7000222,
    90002,
    900023,
    500011,
]


def _result(code: int, error: str = "invalid_grant") -> dict[str, object]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: Something.\r\nTrace ID: t-1\r\nCorrelation ID: c-1"
        "\r\nTimestamp: 2026-11-23 04:00:00Z",
        "error_codes": [code],
        "trace_id": "t-1",
        "correlation_id": "c-1",
    }


@pytest.mark.parametrize("code", REQUIRED)
def test_every_required_code_has_a_diagnosis_and_remedy(code: int) -> None:
    exc = error_from_result(_result(code))
    assert exc.code == code
    assert f"AADSTS{code}" in exc.message
    assert exc.remedy and exc.remedy != exc.message
    assert exc.trace_id == "t-1" and exc.correlation_id == "c-1"
    assert type(exc) is CATALOGUE[code].kind
    assert "\n" not in exc.message


def test_specific_remedies() -> None:
    assert "Secret ID" in error_from_result(_result(7000215)).remedy
    assert "secret ID" in error_from_result(_result(7000215)).message
    assert "Allow public client flows" in error_from_result(_result(7000218)).remedy
    assert "new client secret" in error_from_result(_result(7000222)).remedy
    assert isinstance(error_from_result(_result(50076)), errors.InteractionRequiredError)
    assert isinstance(error_from_result(_result(90002)), errors.TenantNotFoundError)


def test_unknown_code_keeps_code_description_and_ids() -> None:
    exc = error_from_result(_result(4242424))
    assert type(exc) is errors.TokenRequestError
    assert "AADSTS4242424" in exc.message and "Something." in exc.message
    assert "Trace ID" not in exc.message
    assert "error?code=4242424" in exc.remedy
    assert "trace id t-1" in str(exc)


def test_code_from_description_when_error_codes_missing() -> None:
    assert parse_aadsts_code({"error_description": "AADSTS50126: Error validating"}) == 50126
    assert parse_aadsts_code({"error": "invalid_grant"}) == 0


def test_device_flow_errors_without_code() -> None:
    exc = error_from_result({"error": "authorization_declined"})
    assert isinstance(exc, errors.InteractionRequiredError)
    assert "declined" in exc.message
