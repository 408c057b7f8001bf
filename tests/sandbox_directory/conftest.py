"""A sandbox for the Graph directory tests and plain-httpx helpers: admin tokens, Graph calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mailgate.sandbox.directory.tenant import ADMIN_TOOL_CLIENT_ID
from mailgate.testing import SandboxController

GRAPH = "https://graph.microsoft.com"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ADMIN_SCOPES = " ".join(
    f"{GRAPH}/{name}"
    for name in (
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "DelegatedPermissionGrant.ReadWrite.All",
    )
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("directory")) as controller:
        yield controller


def device_code_token(
    sandbox: SandboxController,
    user: str = "admin",
    scope: str = ADMIN_SCOPES,
    client_id: str = ADMIN_TOOL_CLIENT_ID,
) -> str:
    """A delegated token by the device-code flow, the user approving through the test hook."""
    tenant = sandbox.tenant("contoso")
    person = sandbox.user(user)
    with sandbox.http() as client:
        flow = client.post(
            tenant["devicecode_endpoint"], data={"client_id": client_id, "scope": scope}
        ).json()
        sandbox.approve_device_code(flow["user_code"], person["upn"], person["password"])
        answer = client.post(
            tenant["token_endpoint"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": client_id,
                "device_code": flow["device_code"],
            },
        ).json()
    assert "access_token" in answer, answer
    return str(answer["access_token"])


def client_credentials(
    sandbox: SandboxController, client_id: str, secret: str, resource: str = "exchange"
) -> dict[str, Any]:
    """The token endpoint's JSON answer to a client-credentials request with a secret."""
    scope = (
        "https://outlook.office365.com/.default" if resource == "exchange" else f"{GRAPH}/.default"
    )
    with sandbox.http() as client:
        response = client.post(
            sandbox.tenant("contoso")["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": scope,
            },
        )
    return dict(response.json())


class Graph:
    """Plain httpx calls to the sandbox's Graph with one bearer token."""

    def __init__(self, sandbox: SandboxController, token: str) -> None:
        self.client = httpx.Client(
            verify=sandbox.ssl_context(),
            base_url=f"{sandbox.base_url}/v1.0",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        return self.client.request(method, path, json=body, params=params or None)

    def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        response = self.call(method, path, body, **params)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def resource(self, app_id: str) -> dict[str, Any]:
        (found,) = self.ok("GET", "/servicePrincipals", **{"$filter": f"appId eq '{app_id}'"})[
            "value"
        ]
        return dict(found)
