"""Unit tests of the setup plan data for every protocol x flow, and of input validation."""

from __future__ import annotations

import itertools

import pytest

from mailgate.admin.plan import (
    EXCHANGE_API,
    GRAPH_API,
    Flow,
    SetupPlan,
    build_plan,
    make_request,
)
from mailgate.errors import InvalidInputError
from mailgate.protocols.base import Protocol

CLIENT = "11111111-2222-3333-4444-555555555555"
SP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
TENANT = "contoso.onmicrosoft.com"
BOXES = ("scan@contoso.com", "ap@contoso.com")

EXPECTED_NAMES: dict[tuple[str, bool], list[str]] = {
    ("imap", True): ["IMAP.AccessAsApp"],
    ("pop", True): ["POP.AccessAsApp"],
    ("smtp", True): ["SMTP.SendAsApp"],
    ("ews", True): ["full_access_as_app"],
    ("graph", True): ["Mail.ReadWrite", "Mail.Send"],
    ("imap", False): ["IMAP.AccessAsUser.All", "offline_access"],
    ("pop", False): ["POP.AccessAsUser.All", "offline_access"],
    ("smtp", False): ["SMTP.Send", "offline_access"],
    ("ews", False): ["EWS.AccessAsUser.All", "offline_access"],
    ("graph", False): ["Mail.ReadWrite", "Mail.Send", "offline_access"],
}

COMBINATIONS = list(itertools.product([p.value for p in Protocol], [f.value for f in Flow]))


def plan_for(protocol: str, flow: str, **kwargs: object) -> SetupPlan:
    defaults: dict[str, object] = {
        "tenant": TENANT,
        "client_id": CLIENT,
        "sp_object_id": SP,
        "mailboxes": BOXES,
    }
    defaults.update(kwargs)
    mailboxes = defaults.pop("mailboxes")
    assert isinstance(mailboxes, tuple)
    return build_plan(make_request(protocol, flow, mailboxes, **defaults))  # type: ignore[arg-type]


def all_lines(plan: SetupPlan) -> list[str]:
    return [line for block in plan.powershell for line in block.lines]


def test_every_protocol_flow_pair_is_covered() -> None:
    # 5 protocols x 5 flows; the brief said 15, but every pair is a valid plan.
    assert len(COMBINATIONS) == 25


@pytest.mark.parametrize(("protocol", "flow"), COMBINATIONS)
def test_permissions(protocol: str, flow: str) -> None:
    plan = plan_for(protocol, flow)
    app_only = flow in ("client-credentials", "certificate")
    assert [p.name for p in plan.permissions] == EXPECTED_NAMES[(protocol, app_only)]
    main_api = GRAPH_API if protocol == "graph" else EXCHANGE_API
    for perm in plan.permissions:
        assert perm.why
        if perm.name == "offline_access":
            assert perm.api == GRAPH_API and perm.type == "Delegated"
        else:
            assert perm.api == main_api
            assert perm.type == ("Application" if app_only else "Delegated")


@pytest.mark.parametrize(("protocol", "flow"), COMBINATIONS)
def test_consent_url_filled_in(protocol: str, flow: str) -> None:
    plan = plan_for(protocol, flow)
    assert plan.admin_consent_url == (
        f"https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={CLIENT}"
    )


@pytest.mark.parametrize(("protocol", "flow"), COMBINATIONS)
def test_platform_settings(protocol: str, flow: str) -> None:
    settings = " ".join(plan_for(protocol, flow).platform_settings)
    if flow in ("ropc", "device-code"):
        assert "Allow public client flows" in settings and "Yes" in settings
        assert "http://localhost" not in settings
    elif flow == "auth-code":
        assert "http://localhost" in settings and "Mobile and desktop" in settings
        assert "public client flows" not in settings
    else:
        assert settings == ""


@pytest.mark.parametrize(("protocol", "flow"), COMBINATIONS)
def test_credential_and_creds_command(protocol: str, flow: str) -> None:
    plan = plan_for(protocol, flow)
    steps = " ".join(plan.credential_steps)
    creds_add = plan.mailgate_commands[0]
    assert creds_add.startswith("mailgate creds add ")
    assert f"--client-id {CLIENT}" in creds_add and f"--tenant {TENANT}" in creds_add
    expected_kind = {
        "client-credentials": "client-secret",
        "certificate": "certificate",
        "ropc": "password",
        "auth-code": "delegated",
        "device-code": "delegated",
    }[flow]
    assert f"--kind {expected_kind}" in creds_add
    if flow == "client-credentials":
        assert "180 days" in steps and "Value" in steps and "Secret ID" in steps
    elif flow == "certificate":
        assert "thumbprint" in steps and "--kind certificate" in steps
    else:
        assert "no secret" in steps
    if flow in ("auth-code", "device-code"):
        assert f"--flow {flow}" in creds_add
        assert any(c.startswith("mailgate creds login ") for c in plan.mailgate_commands)
    if flow not in ("client-credentials", "certificate"):
        assert "offline_access" in creds_add
    adds = [c for c in plan.mailgate_commands if c.startswith("mailgate mailbox add")]
    assert len(adds) == 2 and all(f"--protocol {protocol}" in c for c in adds)
    assert "mailgate test scan" in " ".join(plan.mailgate_commands)


@pytest.mark.parametrize(("protocol", "flow"), COMBINATIONS)
def test_powershell(protocol: str, flow: str) -> None:
    plan = plan_for(protocol, flow)
    lines = all_lines(plan)
    text = "\n".join(lines)
    app_only = flow in ("client-credentials", "certificate")
    if lines:
        assert "Connect-ExchangeOnline" in lines
    assert "<" not in text, "every id was given, so no placeholder may remain"
    if app_only and protocol in ("imap", "pop", "smtp"):
        assert f"New-ServicePrincipal -AppId {CLIENT} -ObjectId {SP} -DisplayName 'mailgate'" in (
            lines
        )
        for box in BOXES:
            assert (
                f"Add-MailboxPermission -Identity '{box}' -User {SP} -AccessRights FullAccess"
                in lines
            )
        explained = " ".join(b.explanation for b in plan.powershell)
        assert "Enterprise applications" in explained
    else:
        assert "Add-MailboxPermission" not in text
    if app_only and protocol == "smtp":
        assert all(
            f"Add-RecipientPermission -Identity '{b}' -Trustee {SP} -AccessRights SendAs" in text
            for b in BOXES
        )
    else:
        assert "Add-RecipientPermission" not in text
    if protocol == "smtp":
        for box in BOXES:
            assert f"Set-CASMailbox -Identity '{box}' -SmtpClientAuthenticationDisabled $false" in (
                lines
            )
    if app_only and protocol in ("ews", "graph"):
        assert "New-DistributionGroup -Name 'mailgate-app-mailboxes' -Type Security" in text
        for box in BOXES:
            assert f"-Member '{box}'" in text
            assert f"Test-ApplicationAccessPolicy -Identity '{box}' -AppId {CLIENT}" in lines
        assert f"New-ApplicationAccessPolicy -AppId {CLIENT} -PolicyScopeGroupId" in text
        assert "-AccessRight RestrictAccess" in text
        assert "New-ManagementScope" in text
        role = "Application EWS.AccessAsApp" if protocol == "ews" else "Application Mail.ReadWrite"
        assert f"New-ManagementRoleAssignment -App {SP} -Role '{role}'" in text
        assert [b.optional for b in plan.powershell if "RBAC" in b.title] == [True]
    else:
        assert "ApplicationAccessPolicy" not in text and "New-ManagementScope" not in text
    if not app_only and protocol == "graph":
        assert plan.powershell == ()


@pytest.mark.parametrize("flow", [f.value for f in Flow])
def test_ews_carries_retirement_note(flow: str) -> None:
    notes = " ".join(plan_for("ews", flow).notes)
    assert "1 Oct 2026" in notes and "1 Apr 2027" in notes and "graph" in notes
    assert "Retire" not in " ".join(plan_for("graph", flow).notes)


def test_permission_guids_only_where_verified() -> None:
    ews_app = plan_for("ews", "client-credentials").permissions[0]
    ews_user = plan_for("ews", "ropc").permissions[0]
    assert ews_app.guid == "dc890d15-9560-4a4c-9b7f-a736ec74ec40"
    assert ews_user.guid == "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5"
    assert plan_for("imap", "certificate").permissions[0].guid is None
    assert EXCHANGE_API.app_id == "00000002-0000-0ff1-ce00-000000000000"
    assert GRAPH_API.app_id == "00000003-0000-0000-c000-000000000000"


def test_placeholders_when_ids_unknown() -> None:
    plan = build_plan(make_request("imap", "client-credentials"))
    assert plan.admin_consent_url == (
        "https://login.microsoftonline.com/<tenant>/adminconsent?client_id=<client-id>"
    )
    text = "\n".join(all_lines(plan))
    assert "New-ServicePrincipal -AppId <client-id> -ObjectId <enterprise-app-object-id>" in text
    assert "Add-MailboxPermission -Identity '<mailbox>'" in text
    assert any("Placeholders" in n for n in plan.notes)


def test_graph_app_only_without_mailboxes_warns_tenant_wide() -> None:
    plan = build_plan(make_request("graph", "client-credentials"))
    assert any("every mailbox" in n for n in plan.notes)
    assert "ApplicationAccessPolicy" not in "\n".join(all_lines(plan))


@pytest.mark.parametrize(
    ("cloud", "host"),
    [
        ("global", "login.microsoftonline.com"),
        ("usgov", "login.microsoftonline.us"),
        ("usgov-dod", "login.microsoftonline.us"),
        ("china", "login.partner.microsoftonline.cn"),
    ],
)
def test_cloud_login_host(cloud: str, host: str) -> None:
    plan = plan_for("smtp", "device-code", cloud=cloud)
    assert plan.admin_consent_url.startswith(f"https://{host}/{TENANT}/adminconsent?")
    if cloud != "global":
        assert f"--cloud {cloud}" in plan.mailgate_commands[0]


def test_values_are_normalised_and_deduplicated() -> None:
    request = make_request(
        " IMAP ",
        "Device-Code",
        ["A@Contoso.com", "a@contoso.com"],
        tenant="Contoso.com",
        client_id="{11111111-2222-3333-4444-55555555555A}",
    )
    assert request.protocol is Protocol.IMAP and request.flow is Flow.DEVICE_CODE
    assert request.mailboxes == ("a@contoso.com",)
    assert request.tenant == "contoso.com"
    assert request.client_id == "11111111-2222-3333-4444-55555555555a"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"protocol": "owa"}, "--protocol"),
        ({"flow": "implicit"}, "--flow"),
        ({"mailboxes": ["not-an-address"]}, "--mailbox"),
        ({"tenant": "<tenant>"}, "--tenant"),
        ({"client_id": "1234"}, "--client-id"),
        ({"sp_object_id": "xyz"}, "--sp-object-id"),
        ({"cloud": "germany"}, "--cloud"),
    ],
)
def test_invalid_input(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"protocol": "imap", "flow": "ropc", "mailboxes": ()}
    args.update(kwargs)
    with pytest.raises(InvalidInputError) as info:
        make_request(
            args.pop("protocol"),  # type: ignore[arg-type]
            args.pop("flow"),  # type: ignore[arg-type]
            args.pop("mailboxes"),  # type: ignore[arg-type]
            **args,  # type: ignore[arg-type]
        )
    assert info.value.field == field
    assert info.value.exit_code == 2


def test_placeholder_note_names_only_missing_options() -> None:
    partial = build_plan(
        make_request("smtp", "certificate", ["a@contoso.com"], tenant=TENANT, client_id=CLIENT)
    )
    notes = [n for n in partial.notes if n.startswith("Placeholders")]
    assert notes == [
        "Placeholders in <angle brackets>: pass --sp-object-id to have them filled in."
    ]
    bare = build_plan(make_request("imap", "client-credentials"))
    assert "--tenant, --client-id, --sp-object-id, --mailbox" in " ".join(bare.notes)
    assert not any(n.startswith("Placeholders") for n in plan_for("smtp", "certificate").notes)


def test_powershell_strings_cannot_be_broken_out_of() -> None:
    from mailgate.admin import _powershell

    assert _powershell._q("o'brien@x.com") == "'o''brien@x.com'"
    assert _powershell._q("a\u2019b@x.com") == "'a\u2019\u2019b@x.com'"
    assert _powershell._q("a$b`c@x.com") == "'a$b`c@x.com'"  # single quotes: no expansion
