"""Exchange Online settings and mailboxes of a sandbox tenant, as read from the tenant TOML.

Format (inside one ``[[tenants]]``)::

    [tenants.exchange]
    ews_enabled = true
    smtp_messages_per_minute = 30        # per mailbox; the 31st within 60 s gets a 4xx
    max_message_size = 36700160          # bytes (35 MB); larger SMTP DATA gets 552 5.3.4
    graph_requests_per_10_minutes = 10000
    graph_concurrent_requests = 4
    [[tenants.exchange.service_principals]]      # New-ServicePrincipal -AppId -ObjectId
    app_id = "<client id>"
    object_id = "<enterprise app object id>"     # the app registration's object id is the trap
    [[tenants.exchange.application_access_policies]]
    app_id = "<client id>"
    access_right = "RestrictAccess"              # or DenyAccess
    mailboxes = ["approvals@contoso.onmicrosoft.com"]
    [[tenants.mailboxes]]
    address = "alice@contoso.onmicrosoft.com"
    display_name = "Alice Demo"
    owner = "alice@contoso.onmicrosoft.com"      # empty for a shared mailbox
    smtp_auth_enabled = true
    full_access = ["<SP object id>", "bob@contoso.onmicrosoft.com"]  # Add-MailboxPermission
    send_as = []                                 # Add-RecipientPermission SendAs
    [[tenants.mailboxes.messages]]
    folder = "Inbox"
    from = "someone@example.com"
    subject = "Invoice 4711"
    body = "Please find the invoice attached."
    attachments = [{ name = "invoice-4711.pdf", content_type = "application/pdf", size = 11000 }]
    seen = false
    # or: eml_file = "mail/x.eml" (relative to the TOML)

:func:`demo_mail` adds this part to the generated demo tenant.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ApplicationAccessPolicy",
    "DistributionGroup",
    "ExchangeSettings",
    "MailboxConfig",
    "SeedAttachment",
    "SeedMessage",
    "ServicePrincipalRegistration",
    "demo_mail",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _guid(value: str) -> str:
    return str(uuid.UUID(value))


class ServicePrincipalRegistration(_Model):
    """``New-ServicePrincipal -AppId <app_id> -ObjectId <object_id>`` in Exchange Online."""

    app_id: str
    object_id: str

    _check_ids = field_validator("app_id", "object_id")(_guid)


class ApplicationAccessPolicy(_Model):
    """``New-ApplicationAccessPolicy``: limits an app's EWS and Graph access to mailboxes."""

    app_id: str
    access_right: Literal["RestrictAccess", "DenyAccess"]
    mailboxes: list[str] = []

    _check_id = field_validator("app_id")(_guid)

    def allows(self, address: str) -> bool:
        """True if this policy lets the app reach ``address``."""
        listed = address.lower() in (m.lower() for m in self.mailboxes)
        return listed if self.access_right == "RestrictAccess" else not listed


class DistributionGroup(_Model):
    """A mail-enabled security group (``New-DistributionGroup``), scope of access policies."""

    name: str
    address: str
    members: list[str] = []


class ExchangeSettings(_Model):
    """Tenant-wide Exchange Online settings and limits."""

    ews_enabled: bool = True
    smtp_messages_per_minute: Annotated[int, Field(gt=0)] = 30
    max_message_size: Annotated[int, Field(gt=0)] = 36_700_160
    graph_requests_per_10_minutes: Annotated[int, Field(gt=0)] = 10_000
    graph_concurrent_requests: Annotated[int, Field(gt=0)] = 4
    service_principals: list[ServicePrincipalRegistration] = []
    application_access_policies: list[ApplicationAccessPolicy] = []
    distribution_groups: list[DistributionGroup] = []

    def group(self, identity: str) -> DistributionGroup | None:
        """The distribution group with this address or name (case-insensitive)."""
        wanted = identity.strip().lower()
        return next(
            (g for g in self.distribution_groups if wanted in (g.address.lower(), g.name.lower())),
            None,
        )

    def service_principal(self, app_id: str) -> ServicePrincipalRegistration | None:
        """The Exchange registration of the app, if any."""
        wanted = app_id.strip().lower()
        return next((s for s in self.service_principals if s.app_id == wanted), None)

    def policies(self, app_id: str) -> list[ApplicationAccessPolicy]:
        """Application access policies scoped to the app."""
        wanted = app_id.strip().lower()
        return [p for p in self.application_access_policies if p.app_id == wanted]


class SeedAttachment(_Model):
    """An attachment of a seeded message; its bytes are generated to ``size``."""

    name: str
    content_type: str = "application/octet-stream"
    size: Annotated[int, Field(ge=0)] = 1024


class SeedMessage(_Model):
    """A message put into a mailbox when the sandbox starts."""

    folder: str = "Inbox"
    from_: str = Field(default="", alias="from")
    to: list[str] = []
    subject: str = ""
    body: str = ""
    attachments: list[SeedAttachment] = []
    seen: bool = False
    flagged: bool = False
    date: datetime | None = None
    in_reply_to: str = ""
    eml_file: str | None = None

    @field_validator("date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class MailboxConfig(_Model):
    """A user or shared mailbox with its permissions (``Add-MailboxPermission`` & co.)."""

    address: str
    display_name: str = ""
    owner: str = ""
    smtp_auth_enabled: bool = True
    full_access: list[str] = []
    send_as: list[str] = []
    messages: list[SeedMessage] = []

    @property
    def shared(self) -> bool:
        """A shared mailbox has no owner who signs in."""
        return not self.owner

    def is_owner(self, upn: str) -> bool:
        """True if ``upn`` owns this mailbox."""
        return bool(self.owner) and self.owner.lower() == upn.lower()

    def has_full_access(self, principal: str) -> bool:
        """FullAccess for a UPN or a service principal object id (case-insensitive)."""
        return principal.lower() in (p.lower() for p in self.full_access)

    def has_send_as(self, principal: str) -> bool:
        """SendAs for a UPN or a service principal object id (case-insensitive)."""
        return principal.lower() in (p.lower() for p in self.send_as)


def _msg(sender: str, subject: str, body: str, **extra: Any) -> dict[str, Any]:
    return {"from": sender, "subject": subject, "body": body, **extra}


def demo_mail(domain: str, daemon_sp: str) -> list[dict[str, Any]]:
    """Mailboxes of the Contoso demo tenant, as TOML-ready dicts.

    ``daemon_sp`` is mailgate-daemon's enterprise application object id: it holds FullAccess
    on the shared mailboxes and on alice's, and none on bob's.
    """
    alice, bob = f"alice@{domain}", f"bob@{domain}"
    approvals, servicedesk, noreply = (
        f"{n}@{domain}" for n in ("approvals", "servicedesk", "noreply")
    )
    return [
        {
            "address": alice,
            "display_name": "Alice Demo",
            "owner": alice,
            "full_access": [daemon_sp],
            "messages": [
                _msg(
                    "it@contoso.example",
                    "Welcome to mailgate",
                    "Your sandbox mailbox is ready.",
                    seen=True,
                ),
                _msg(
                    "billing@vendor.example",
                    "Invoice 4711",
                    "Please find the invoice attached.",
                    attachments=[
                        {
                            "name": "invoice-4711.pdf",
                            "content_type": "application/pdf",
                            "size": 11000,
                        }
                    ],
                ),
                _msg(
                    "orders@vendor.example",
                    "Order 1234 shipped",
                    "Your order 1234 left our warehouse today.",
                    seen=True,
                ),
                _msg(
                    approvals,
                    "Approval needed: purchase request 88",
                    "Reply APPROVE or REJECT.",
                    seen=True,
                ),
                _msg(
                    bob,
                    "Re: Approval needed: purchase request 88",
                    "APPROVE\n\nBob",
                    in_reply_to="<request-88@contoso.example>",
                ),
                _msg(
                    "newsletter@news.example",
                    "Weekly digest",
                    "Nothing new this week.",
                    seen=True,
                    flagged=True,
                ),
                _msg(
                    alice,
                    "Notes for the meeting",
                    "Agenda: budget, hiring.",
                    folder="Sent Items",
                    seen=True,
                    to=[bob],
                ),
            ],
        },
        {
            "address": approvals,
            "display_name": "Approvals",
            "full_access": [daemon_sp, alice],
            "messages": [
                _msg(
                    bob,
                    "Re: Approval needed: purchase request 88",
                    "APPROVE",
                    in_reply_to="<request-88@contoso.example>",
                ),
                _msg(
                    alice,
                    "Re: Approval needed: travel request 12",
                    "REJECT\nToo expensive.",
                    in_reply_to="<request-12@contoso.example>",
                ),
                _msg(
                    "someone@external.example",
                    "Question about approvals",
                    "How long does an approval take?",
                ),
            ],
        },
        {
            "address": servicedesk,
            "display_name": "Service Desk",
            "full_access": [daemon_sp],
            "messages": [
                _msg(
                    "customer@external.example",
                    "Printer does not work",
                    "The printer on floor 3 shows error 42.",
                ),
                _msg(
                    "customer2@external.example",
                    "VPN access",
                    "Please give me VPN access.",
                    attachments=[
                        {"name": "screenshot.png", "content_type": "image/png", "size": 4000}
                    ],
                ),
                _msg(
                    "customer@external.example",
                    "Re: Printer does not work",
                    "It works again, thanks.",
                    seen=True,
                ),
            ],
        },
        {
            "address": noreply,
            "display_name": "No Reply",
            "smtp_auth_enabled": False,
            "full_access": [daemon_sp],
        },
        {
            "address": bob,
            "display_name": "Bob Demo",
            "owner": bob,
            "messages": [_msg(alice, "Lunch?", "Shall we have lunch at noon?")],
        },
    ]
