"""Read Efecte ESM's mail platform settings (``mail.oauth.*``) and map them onto ours.

Seed 004 tells admins to set these in ESM's platform settings, or per mail task::

    mail.store.oauth.enabled = true
    mail.transport.oauth.enabled = true
    mail.oauth.authorize.endpoint =
    https://login.microsoftonline.com/{tenantID}/oauth2/v2.0/authorize
    mail.oauth.client.id = {clientId}
    mail.oauth.scopes =
    https://outlook.office365.com/IMAP.AccessAsUser.All,https://outlook.office365.com/SMTP.Send

Note the values on the line after ``key =``, as the guide prints them: a line that is not
``key = value`` continues the previous key when that key had no value yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mailgate.errors import InvalidInputError
from mailgate.identity.inputs import parse_authority_endpoint, parse_guid, parse_scopes

__all__ = [
    "ESM_KEYS",
    "EXCHANGE",
    "OAUTH_PARSERS",
    "EsmImport",
    "map_esm_settings",
    "parse_properties",
]

_ASSIGNMENT = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)\s*[=:]\s*(.*)$")
EXCHANGE = "https://outlook.office365.com"


def _flag(key: str) -> Callable[[str], tuple[object, list[str]]]:
    def parse(value: str) -> tuple[object, list[str]]:
        if value.lower() not in ("true", "false"):
            raise InvalidInputError(key, "true or false", value)
        return value.lower() == "true", []

    return parse


def _endpoint(value: str) -> tuple[object, list[str]]:
    parsed = parse_authority_endpoint(value, "authorize")
    host, tenant = parsed.authority_host, parsed.tenant
    return f"https://{host}/{tenant}/oauth2/v2.0/authorize", list(parsed.warnings)


def _client_id(value: str) -> tuple[object, list[str]]:
    return parse_guid("mail.oauth.client.id", value), []


def _scopes(value: str) -> tuple[object, list[str]]:
    parsed = parse_scopes(value, app_only=False, default_resource=EXCHANGE)
    return parsed.as_text(), list(parsed.warnings)


OAUTH_PARSERS: dict[str, Callable[[str], tuple[object, list[str]]]] = {
    "authorize_endpoint": _endpoint,
    "client_id": _client_id,
    "scopes": _scopes,
}

ESM_KEYS: dict[str, tuple[str, Callable[[str], tuple[object, list[str]]]]] = {
    "mail.store.oauth.enabled": ("oauth.store_enabled", _flag("mail.store.oauth.enabled")),
    "mail.transport.oauth.enabled": (
        "oauth.transport_enabled",
        _flag("mail.transport.oauth.enabled"),
    ),
    "mail.oauth.authorize.endpoint": ("oauth.authorize_endpoint", _endpoint),
    "mail.oauth.client.id": ("oauth.client_id", _client_id),
    "mail.oauth.scopes": ("oauth.scopes", _scopes),
}


def parse_properties(text: str, source: str = "settings file") -> list[tuple[str, str]]:
    """``key = value`` pairs in order; ``#``/``!`` comments; values may follow on the next line."""
    pairs: list[tuple[str, str]] = []
    pending_continuation = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = _ASSIGNMENT.match(line)
        if match and not (pending_continuation and "://" in line.partition("=")[0]):
            key, value = match.group(1), match.group(2).strip()
            pairs.append((key, value.removesuffix("\\").strip()))
            pending_continuation = not value or value.endswith("\\")
            continue
        if pending_continuation and pairs:
            key, value = pairs[-1]
            pairs[-1] = (key, (value + line.removesuffix("\\").strip()).strip())
            pending_continuation = line.endswith("\\")
            continue
        raise InvalidInputError(f"{source} line {number}", "key = value", raw.strip())
    return pairs


@dataclass
class EsmImport:
    """Our dotted keys with their values, what was renamed, and what was left out."""

    values: dict[str, object] = field(default_factory=dict)
    mapping: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def map_esm_settings(text: str, source: str = "settings file") -> EsmImport:
    """Map ESM's keys onto ours; unknown keys are reported, never silently dropped."""
    result = EsmImport()
    for key, value in parse_properties(text, source):
        known = ESM_KEYS.get(key)
        if known is None:
            result.warnings.append(f"ignored {key}: not a setting mailgate maps.")
            continue
        ours, parse = known
        if not value:
            raise InvalidInputError(key, "a value (it is empty)")
        parsed, warnings = parse(value)
        result.values[ours] = parsed
        result.mapping.append((key, ours))
        result.warnings.extend(f"{key}: {w}" for w in warnings)
    return result
