"""Helpers shared by the sandbox tests: MSAL application factories and error checks."""

from __future__ import annotations

from typing import Any

import msal
import requests

from mailgate.testing import SandboxController

EXCHANGE_DEFAULT = "https://outlook.office365.com/.default"
IMAP_DELEGATED = "https://outlook.office.com/IMAP.AccessAsUser.All"


class RecordingSession(requests.Session):
    """A requests session that remembers the form bodies MSAL posts."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[dict[str, Any]] = []

    def post(self, url: Any, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.posted.append(dict(data or {}))
        return super().post(url, data=data, **kwargs)


def public_app(sandbox: SandboxController, name: str = "mailgate-public", **kwargs: Any) -> Any:
    app = sandbox.app(name)
    return msal.PublicClientApplication(
        app["client_id"],
        authority=sandbox.authority(),
        instance_discovery=False,
        **{"http_client": sandbox.requests_session(), **kwargs},
    )


def confidential_app(
    sandbox: SandboxController, credential: Any, name: str = "mailgate-daemon", **kwargs: Any
) -> Any:
    app = sandbox.app(name)
    return msal.ConfidentialClientApplication(
        app["client_id"],
        client_credential=credential,
        authority=sandbox.authority(),
        instance_discovery=False,
        **{"http_client": sandbox.requests_session(), **kwargs},
    )


def aadsts_code(result: dict[str, Any]) -> int:
    """The AADSTS code of an MSAL error result, checking the Microsoft error shape on the way."""
    assert "access_token" not in result, result
    assert result["error_codes"] == [int(result["error_description"].split(":")[0][6:])]
    assert "\r\nTrace ID: " in result["error_description"]
    assert result["trace_id"] and result["correlation_id"] and result["timestamp"]
    return int(result["error_codes"][0])


def decode(sandbox: SandboxController, token: str, audience: str) -> dict[str, Any]:
    """Verify a sandbox token against the JWKS fetched over HTTPS, as a resource server would."""
    import httpx
    import jwt

    tenant = sandbox.tenant("contoso")
    keys = httpx.get(
        f"{tenant['authority']}/discovery/v2.0/keys", verify=sandbox.ssl_context()
    ).json()["keys"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT" and header["alg"] == "RS256"
    assert header["kid"] == header["x5t"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=audience
    )
    return claims
