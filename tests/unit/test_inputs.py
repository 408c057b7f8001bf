"""The seeds' input forms: tenant, client ID, token URI, authorize endpoint, scope strings."""

from __future__ import annotations

import pytest

from mailgate.errors import InvalidInputError
from mailgate.identity.inputs import (
    parse_authority_endpoint,
    parse_guid,
    parse_redirect_uri,
    parse_scopes,
    parse_tenant,
)

EXO = "https://outlook.office365.com"
TID = "0a1b2c3d-0000-4000-8000-00000000abcd"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TID.upper(), TID),
        ("{" + TID + "}", TID),
        ("Contoso.OnMicrosoft.com", "contoso.onmicrosoft.com"),
        ("organizations", "organizations"),
        ("  contoso.com ", "contoso.com"),
    ],
)
def test_tenant_forms_are_normalised(value: str, expected: str) -> None:
    assert parse_tenant(value) == expected


@pytest.mark.parametrize(
    "value", ["{directory_tenant_ID}", "not a tenant", "0a1b2c3d-0000", "contoso", "a..b.com", ""]
)
def test_malformed_tenant_names_the_field_and_form(value: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_tenant(value)
    assert info.value.field == "tenant"
    assert "GUID" in info.value.expected
    assert info.value.exit_code == 2


def test_guid_rejects_secret_id_like_typos() -> None:
    with pytest.raises(InvalidInputError, match="client ID: expected a GUID"):
        parse_guid("client ID", "0a1b2c3d-0000-4000-8000-00000000abcg")


def test_token_uri_gives_tenant_and_cloud() -> None:
    got = parse_authority_endpoint(f"https://login.microsoftonline.com/{TID}/oauth2/v2.0/token")
    assert (got.cloud, got.tenant, got.warnings) == ("global", TID, ())
    us = parse_authority_endpoint("https://login.microsoftonline.us/contoso.us/oauth2/v2.0/token")
    assert us.cloud == "usgov"
    cn = parse_authority_endpoint(
        f"https://login.partner.microsoftonline.cn/{TID}/oauth2/v2.0/authorize", "authorize"
    )
    assert cn.cloud == "china"
    local = parse_authority_endpoint(f"https://127.0.0.1:8443/{TID}/oauth2/v2.0/token")
    assert (local.cloud, local.authority_host) == ("sandbox", "127.0.0.1:8443")


def test_v1_token_uri_is_accepted_with_a_warning() -> None:
    got = parse_authority_endpoint(f"https://login.microsoftonline.com/{TID}/oauth2/token")
    assert got.tenant == TID
    assert "v1.0" in got.warnings[0]


@pytest.mark.parametrize(
    "uri",
    [
        "http://login.microsoftonline.com/x.com/oauth2/v2.0/token",
        "https://login.microsoftonline.com/{directory_tenant_ID}/oauth2/v2.0/token",
        "https://login.microsoftonline.com/oauth2/v2.0/token",
        "https://evil.example.com/contoso.com/oauth2/v2.0/token",
        "login.microsoftonline.com/contoso.com/oauth2/v2.0/token",
    ],
)
def test_bad_token_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_authority_endpoint(uri)


def test_workflowgen_scope_with_grant_type_is_normalised_with_warning() -> None:
    got = parse_scopes(
        f"{EXO}/.default&grant_type=client_credentials", app_only=True, default_resource=EXO
    )
    assert got.scopes == (f"{EXO}/.default",)
    assert "grant_type" in got.warnings[0]


def test_app_only_bare_resource_gets_default_suffix() -> None:
    got = parse_scopes(EXO, app_only=True, default_resource=EXO)
    assert got.scopes == (f"{EXO}/.default",)
    assert got.warnings


@pytest.mark.parametrize(
    "scope",
    [
        f"{EXO}/.default https://graph.microsoft.com/.default",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "",
    ],
)
def test_app_only_scope_errors(scope: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_scopes(scope, app_only=True, default_resource=EXO)
    assert info.value.field == "scope"


def test_esm_comma_separated_delegated_scopes() -> None:
    got = parse_scopes(
        "https://outlook.office.com/IMAP.AccessAsUser.All,https://outlook.office.com/SMTP.Send,"
        "offline_access, openid",
        app_only=False,
        default_resource=EXO,
    )
    assert got.scopes == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    )
    assert got.resource == "https://outlook.office.com"


def test_bare_exchange_permission_is_prefixed_not_sent_to_graph() -> None:
    got = parse_scopes(
        "IMAP.AccessAsUser.All SMTP.Send offline_access", app_only=False, default_resource=EXO
    )
    assert got.scopes == (f"{EXO}/IMAP.AccessAsUser.All", f"{EXO}/SMTP.Send")
    assert any("Microsoft Graph" in w for w in got.warnings)


def test_delegated_scopes_of_two_resources_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="one resource"):
        parse_scopes(
            f"{EXO}/EWS.AccessAsUser.All https://graph.microsoft.com/Mail.Read",
            app_only=False,
            default_resource=EXO,
        )


@pytest.mark.parametrize("scope", ["offline_access openid", "https://x/ bad", "IMAP\x00"])
def test_malformed_delegated_scopes(scope: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_scopes(scope, app_only=False, default_resource=EXO)


def test_redirect_uri_forms() -> None:
    assert parse_redirect_uri("http://localhost") == "http://localhost"
    assert parse_redirect_uri("https://app.example.com/cb") == "https://app.example.com/cb"
    with pytest.raises(InvalidInputError):
        parse_redirect_uri("http://example.com/cb")
