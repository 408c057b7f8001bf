"""The pure request planning of ``setup apply``, stepped by hand, and the Graph client over
httpx's MockTransport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mailgate.admin.apply import (
    GRAPH_CLI_CLIENT_ID,
    ApplyRequest,
    CertificateUpload,
    GraphCall,
    Progress,
    admin_scopes,
    apply_steps,
    dry_run,
)
from mailgate.admin.graph_client import GraphClient, StepFailed, drive, stopped_error
from mailgate.admin.plan import make_request
from mailgate.errors import AuthorizationError, ProtocolError, TransportError
from mailgate.sandbox.directory.tenant import ADMIN_TOOL_CLIENT_ID
from mailgate.secret import Secret

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
EXO = "00000002-0000-0ff1-ce00-000000000000"
GRAPH = "00000003-0000-0000-c000-000000000000"


def _request(protocol: str, flow: str, **extra: Any) -> ApplyRequest:
    return ApplyRequest(plan=make_request(protocol, flow), name="mailgate test", now=NOW, **extra)


def _resource(*names: str) -> dict[str, Any]:
    entries = [{"value": n, "id": f"id-{n}"} for n in names]
    return {
        "value": [{"id": "resource-sp", "appRoles": entries, "oauth2PermissionScopes": entries}]
    }


def test_app_only_imap_steps_and_progress() -> None:
    progress = Progress()
    steps = apply_steps(_request("imap", "client-credentials", secret_days=90), progress)
    lookup = next(steps)
    assert (lookup.method, lookup.path) == ("GET", "/servicePrincipals")
    assert lookup.params == {"$filter": f"appId eq '{EXO}'"}

    create = steps.send(_resource("IMAP.AccessAsApp"))
    assert (create.method, create.path) == ("POST", "/applications")
    assert create.body == {
        "displayName": "mailgate test",
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": [
            {
                "resourceAppId": EXO,
                "resourceAccess": [{"id": "id-IMAP.AccessAsApp", "type": "Role"}],
            }
        ],
    }
    sp = steps.send({"id": "app-object", "appId": "client-id"})
    assert sp.body == {"appId": "client-id"} and progress.app_id == "client-id"
    secret = steps.send({"id": "sp-object"})
    assert secret.path == "/applications/app-object/addPassword" and secret.secret_answer
    assert secret.body == {
        "passwordCredential": {"displayName": "mailgate", "endDateTime": "2027-01-30T08:00:00Z"}
    }
    consent = steps.send(
        {"secretText": "s3cret", "keyId": "key-1", "endDateTime": "2027-01-30T08:00:00Z"}
    )
    assert consent.path == "/servicePrincipals/sp-object/appRoleAssignments"
    assert consent.body == {
        "principalId": "sp-object",
        "resourceId": "resource-sp",
        "appRoleId": "id-IMAP.AccessAsApp",
    }
    with pytest.raises(StopIteration) as done:
        steps.send({})
    assert done.value.value is progress and progress.done
    assert progress.secret == Secret("s3cret") and "s3cret" not in repr(progress)
    assert progress.consented == ["IMAP.AccessAsApp"] and not progress.public_client_flows


def test_delegated_graph_grants_per_api_and_allows_public_client_flows() -> None:
    calls = dry_run(_request("graph", "device-code"))
    assert [c.method for c in calls] == ["GET", "POST", "POST", "POST", "PATCH"]
    grant = calls[3]
    assert grant.path == "/oauth2PermissionGrants"
    assert grant.body is not None and grant.body["consentType"] == "AllPrincipals"
    assert grant.body["scope"] == "Mail.ReadWrite Mail.Send offline_access"
    assert calls[4].body == {"isFallbackPublicClient": True}
    assert not any(c.path.endswith("addPassword") for c in calls), "public clients hold no secret"


def test_delegated_exchange_needs_both_apis() -> None:
    calls = dry_run(_request("smtp", "auth-code"))
    lookups = [c.params["$filter"] for c in calls if c.method == "GET"]
    assert lookups == [f"appId eq '{EXO}'", f"appId eq '{GRAPH}'"]
    create = next(c for c in calls if c.path == "/applications")
    assert create.body is not None and create.body["publicClient"] == {
        "redirectUris": ["http://localhost"]
    }
    assert sum(c.path == "/oauth2PermissionGrants" for c in calls) == 2
    assert not any(c.method == "PATCH" for c in calls), "auth code needs no public client flows"
    public = dry_run(_request("smtp", "auth-code", public_client=True))
    assert public[-1].body == {"isFallbackPublicClient": True}


def test_certificate_is_uploaded_as_key_credential() -> None:
    upload = CertificateUpload("QUJD", "AB" * 20, "CN=mailgate")
    calls = dry_run(_request("ews", "certificate", certificate=upload))
    (patch,) = [c for c in calls if c.method == "PATCH"]
    assert patch.body == {
        "keyCredentials": [
            {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": "QUJD",
                "displayName": "CN=mailgate",
            }
        ]
    }
    # The verified id of full_access_as_app shows in the dry run; others are placeholders.
    assert "dc890d15-9560-4a4c-9b7f-a736ec74ec40" in str(calls[1].body)


def test_a_permission_the_tenant_lacks_stops_before_anything_is_created() -> None:
    progress = Progress()
    steps = apply_steps(_request("pop", "client-credentials"), progress)
    next(steps)
    with pytest.raises(ProtocolError, match=r"no application permission named POP\.AccessAsApp"):
        steps.send(_resource("IMAP.AccessAsApp"))
    assert progress.application_id is None
    with pytest.raises(ProtocolError, match="no service principal"):
        fresh = apply_steps(_request("pop", "client-credentials"), Progress())
        next(fresh)
        fresh.send({"value": []})


def test_admin_scopes_are_only_what_the_run_needs() -> None:
    graph = "https://graph.microsoft.com"
    assert admin_scopes(graph, True).split() == [
        f"{graph}/Application.ReadWrite.All",
        f"{graph}/AppRoleAssignment.ReadWrite.All",
    ]
    assert (
        admin_scopes(graph, False).split()[1] == f"{graph}/DelegatedPermissionGrant.ReadWrite.All"
    )
    assert GRAPH_CLI_CLIENT_ID == ADMIN_TOOL_CLIENT_ID, "the sandbox answers the default client"


def test_call_url_shows_the_query() -> None:
    call = GraphCall("x", "GET", "/servicePrincipals", params={"$filter": "appId eq 'a'"})
    assert call.url("https://g/v1.0/") == "https://g/v1.0/servicePrincipals?$filter=appId eq 'a'"


def _client(handler: Any) -> GraphClient:
    return GraphClient(
        "https://graph.test/v1.0", Secret("tok"), transport=httpx.MockTransport(handler)
    )


def test_graph_client_turns_refusals_into_mailgate_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        if request.url.path.endswith("/applications"):
            return httpx.Response(
                403,
                json={"error": {"code": "Authorization_RequestDenied", "message": "Insufficient"}},
            )
        if request.method == "PATCH":
            return httpx.Response(204)
        raise httpx.ConnectError("down", request=request)

    with _client(handler) as client:
        with pytest.raises(AuthorizationError, match="HTTP 403 Authorization_RequestDenied"):
            client.send(GraphCall("create", "POST", "/applications", {}))
        assert client.send(GraphCall("patch", "PATCH", "/applications/x", {})) == {}
        with pytest.raises(TransportError, match="could not be reached during 'lookup'"):
            client.send(GraphCall("lookup", "GET", "/servicePrincipals"))


def test_drive_and_stopped_error_name_what_exists() -> None:
    answers = {
        ("GET", "/v1.0/servicePrincipals"): _resource("SMTP.SendAsApp"),
        ("POST", "/v1.0/applications"): {"id": "obj-1", "appId": "app-1"},
        ("POST", "/v1.0/servicePrincipals"): {"id": "sp-1"},
        ("POST", "/v1.0/applications/obj-1/addPassword"): {"secretText": "v", "keyId": "k-1"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        found = answers.get((request.method, request.url.path))
        if found is None:
            return httpx.Response(403, json={"error": {"code": "Authorization_RequestDenied"}})
        return httpx.Response(200, json=found)

    progress = Progress()
    with _client(handler) as client, pytest.raises(StepFailed) as failed:
        drive(apply_steps(_request("smtp", "client-credentials"), progress), client)
    error = stopped_error(
        failed.value, progress, name="n", base_url="https://graph.test/v1.0", stored_credential="c"
    )
    assert isinstance(error, AuthorizationError)
    assert "stopped at 'grant admin consent to SMTP.SendAsApp" in error.message
    assert "the application 'n' (application id app-1, object id obj-1)" in error.message
    assert "a client secret (key id k-1)" in error.message
    assert "stored in credential 'c'" in error.message
    assert "DELETE https://graph.test/v1.0/applications/obj-1" in error.remedy
    assert "--client-id app-1 --sp-object-id sp-1" in error.remedy
