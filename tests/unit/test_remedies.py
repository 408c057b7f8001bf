"""Connection-test diagnoses: claims checks and server replies → cause, fix, PowerShell."""

from __future__ import annotations

import pytest

from mailgate.diagnose.remedies import (
    explain_access_failure,
    explain_auth_failure,
    missing_permission,
    required_permissions,
)
from mailgate.protocols.base import Protocol

APP = {
    "aud": "https://outlook.office365.com",
    "appid": "app-1",
    "oid": "sp-9",
    "roles": ["IMAP.AccessAsApp"],
}
USER = {
    "aud": "https://outlook.office.com",
    "appid": "app-1",
    "upn": "alice@contoso.com",
    "scp": "IMAP.AccessAsUser.All SMTP.Send",
}


@pytest.mark.parametrize(
    ("protocol", "app_only", "needed"),
    [
        (Protocol.IMAP, True, "IMAP.AccessAsApp"),
        (Protocol.POP3, True, "POP.AccessAsApp"),
        (Protocol.SMTP, True, "SMTP.SendAsApp"),
        (Protocol.EWS, True, "full_access_as_app"),
        (Protocol.IMAP, False, "IMAP.AccessAsUser.All"),
        (Protocol.SMTP, False, "SMTP.Send"),
        (Protocol.EWS, False, "EWS.AccessAsUser.All"),
    ],
)
def test_required_permissions(protocol: Protocol, app_only: bool, needed: str) -> None:
    assert required_permissions(protocol, app_only)[0] == needed


def test_claims_that_fit_pass() -> None:
    assert missing_permission(Protocol.IMAP, APP, True) is None
    assert missing_permission(Protocol.SMTP, USER, False) is None


def test_missing_role_names_permission_and_consent() -> None:
    finding = missing_permission(Protocol.POP3, APP, True)
    assert finding is not None
    assert "POP.AccessAsApp" in finding.remedy and "Grant admin consent" in finding.remedy
    assert "Application permission" in finding.remedy
    delegated = missing_permission(Protocol.EWS, USER, False)
    assert delegated is not None and "Delegated permission EWS.AccessAsUser.All" in delegated.remedy


def test_wrong_audience() -> None:
    finding = missing_permission(Protocol.IMAP, {**APP, "aud": "https://graph.microsoft.com"}, True)
    assert finding is not None and "graph.microsoft.com" in finding.cause
    assert missing_permission(Protocol.GRAPH, APP, True) is not None


def test_app_only_rejection_prints_filled_in_powershell() -> None:
    finding = explain_auth_failure(
        Protocol.IMAP, "NO AUTHENTICATE failed.", APP, True, "approvals@contoso.com"
    )
    assert finding.commands == (
        "New-ServicePrincipal -AppId app-1 -ObjectId sp-9",
        "Add-MailboxPermission -Identity approvals@contoso.com -User sp-9 -AccessRights FullAccess",
    )
    assert "Enterprise applications" in finding.remedy
    smtp = explain_auth_failure(
        Protocol.SMTP, "535 5.7.3 Authentication unsuccessful", APP, True, "a@b.com"
    )
    assert any(c.startswith("Add-RecipientPermission") for c in smtp.commands)


def test_smtp_auth_disabled_and_basic_auth() -> None:
    disabled = explain_auth_failure(
        Protocol.SMTP,
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Mailbox.",
        APP,
        True,
        "noreply@contoso.com",
    )
    assert disabled.commands == (
        "Set-CASMailbox -Identity noreply@contoso.com -SmtpClientAuthenticationDisabled $false",
    )
    basic = explain_auth_failure(
        Protocol.SMTP,
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
        APP,
        True,
        "x@y.com",
    )
    assert "turned off" in basic.cause


def test_not_connected_means_user_or_permission() -> None:
    finding = explain_access_failure(
        Protocol.IMAP, "BAD User is authenticated but not connected.", APP, True, "bob@contoso.com"
    )
    assert "user=" in finding.cause
    assert finding.commands == (
        "Add-MailboxPermission -Identity bob@contoso.com -User sp-9 -AccessRights FullAccess",
    )


def test_ews_access_denied_points_at_application_access_policy() -> None:
    finding = explain_access_failure(Protocol.EWS, "ErrorAccessDenied", APP, True, "a@contoso.com")
    assert "application access policy" in finding.cause
    assert finding.commands == (
        "Test-ApplicationAccessPolicy -Identity a@contoso.com -AppId app-1",
    )


def test_send_as_and_unknown_mailbox() -> None:
    assert (
        "SendAs"
        in explain_access_failure(
            Protocol.SMTP, "554 5.2.252 SendAsDenied", USER, False, "x@y.com"
        ).cause
    )
    assert (
        "no mailbox"
        in explain_access_failure(
            Protocol.EWS, "ErrorNonExistentMailbox", APP, True, "x@y.com"
        ).cause
    )
