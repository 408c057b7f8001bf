"""The settings jobs read: import post-processing and limits, outbox pacing, OAuth switches.

Values are validated by pydantic; sizes accept ``25MB``/``35 MiB``/bytes. Secret-valued keys
(``import.webhook_secret``) never sit in a file in clear: the file may only say
``env:VARIABLE``; the value itself comes from the environment.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from mailgate.errors import MailgateError
from mailgate.protocols.base import DEFAULT_CONNECTIONS, MAX_CONNECTIONS
from mailgate.secret import Secret

__all__ = [
    "ImportSettings",
    "MiB",
    "OAuthSettings",
    "OutboxSettings",
    "PostProcess",
    "SecretValue",
    "Settings",
    "Size",
    "parse_size",
]

MiB = 1024 * 1024
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2}
_UNITS |= {"mib": MiB, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


class PostProcess(StrEnum):
    """What an import does to a message once its output is durable."""

    KEEP = "keep"
    MARK_READ = "mark-read"
    MOVE = "move"
    DELETE = "delete"  # to Deleted Items, recoverable
    PERMANENT_DELETE = "permanent-delete"


def parse_size(value: Any) -> int:
    """Bytes from ``25MB``, ``35 MiB``, ``1048576`` (decimal units are powers of 1000)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 25MB")
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise ValueError("expected a size such as 25MB, 35MiB or a number of bytes")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def _secret(value: Any) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    raise ValueError("give it as env:VARIABLE_NAME; secrets are not written in settings files")


Size = Annotated[int, BeforeValidator(parse_size)]
SecretValue = Annotated[
    Secret | None,
    BeforeValidator(_secret),
    PlainSerializer(lambda s: "***" if s else None, return_type=str | None),
]


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True
    )


class ImportSettings(_Section):
    """``[import]``: what happens to imported mail and which mail is set aside."""

    after: PostProcess = PostProcess.KEEP
    move_to: str | None = None
    confirm_permanent_delete: bool = False
    max_size: Size = 25 * MiB
    oversize_folder: str = Field(default="mailgate-oversize", min_length=1, max_length=255)
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    connections: int = Field(default=DEFAULT_CONNECTIONS, ge=1, le=MAX_CONNECTIONS)
    webhook_secret: SecretValue = None


class OutboxSettings(_Section):
    """``[outbox]``: Exchange Online's sending limits, as the worker paces itself."""

    per_minute: int = Field(default=30, ge=1, le=100_000)
    recipients_per_day: int = Field(default=10_000, ge=1, le=10_000_000)
    graph_concurrency: int = Field(default=4, ge=1, le=64)
    graph_requests_per_10_minutes: int = Field(default=10_000, ge=1, le=1_000_000)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=900.0, gt=0, le=86_400)
    # Exchange Online's default send limit (35 MB); larger messages are refused at enqueue.
    max_message_size: Size = 35 * MiB


class OAuthSettings(_Section):
    """``[oauth]``: what the seeds' products call ``mail.store.oauth.enabled`` and friends.

    Basic authentication to Exchange Online is gone, so the switches may only be ``true``; the
    other keys describe the app registration and are checked against the credential in use.
    """

    store_enabled: bool = True
    transport_enabled: bool = True
    authorize_endpoint: str | None = None
    client_id: str | None = None
    scopes: str | None = None

    @field_validator("store_enabled", "transport_enabled")
    @classmethod
    def _only_oauth(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "mailgate always signs in with OAuth2: Microsoft switched basic authentication "
                "off in Exchange Online; remove the key or set it to true"
            )
        return value

    @field_validator("authorize_endpoint", "client_id", "scopes")
    @classmethod
    def _well_formed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        from mailgate.settings.esm import OAUTH_PARSERS  # esm imports identity parsers

        try:
            parsed, _warnings = OAUTH_PARSERS[info.field_name or ""](value)
        except MailgateError as exc:
            raise ValueError(exc.message.rstrip(".")) from None
        return str(parsed)


class Settings(_Section):
    """Every setting a job reads, after layering (see :func:`mailgate.settings.load_settings`)."""

    import_: ImportSettings = Field(ImportSettings(), alias="import")
    outbox: OutboxSettings = OutboxSettings()
    oauth: OAuthSettings = OAuthSettings()
