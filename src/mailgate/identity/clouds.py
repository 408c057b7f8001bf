"""National clouds and the sandbox: where to get tokens and which resource URIs to ask for.

Facts from ../shared/design/microsoft-facts.md section 8. GCC "moderate" uses the worldwide
endpoints, so it is the ``global`` cloud here. The sandbox's authority host is read from the JSON
file a running sandbox writes about itself, because its port is chosen at start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mailgate.errors import ConfigurationError, InvalidInputError

__all__ = [
    "CLOUDS",
    "CLOUD_NAMES",
    "GRAPH_CLI_CLIENT_ID",
    "Cloud",
    "cloud_for_authority_host",
    "get_cloud",
    "load_sandbox_description",
    "normalize_cloud_name",
]

# Microsoft Graph Command Line Tools: the public client an admin signs in with by default
# (here rather than in mailgate.admin so that the CLI can show it without loading the planner).
GRAPH_CLI_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"


@dataclass(frozen=True)
class Cloud:
    """One Microsoft cloud: its login host and the resource URIs its mail APIs answer to."""

    name: str
    authority_host: str
    exchange_resource: str
    graph_resource: str
    smtp_host: str
    ca_file: str | None = None

    @property
    def authority_base(self) -> str:
        return f"https://{self.authority_host}"

    def authority(self, tenant: str) -> str:
        return f"{self.authority_base}/{tenant}"

    def token_endpoint(self, tenant: str) -> str:
        return f"{self.authority(tenant)}/oauth2/v2.0/token"

    @property
    def is_sandbox(self) -> bool:
        return self.name == "sandbox"


CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        "global",
        "login.microsoftonline.com",
        "https://outlook.office365.com",
        "https://graph.microsoft.com",
        "smtp.office365.com",
    ),
    "usgov": Cloud(
        "usgov",
        "login.microsoftonline.us",
        "https://outlook.office365.us",
        "https://graph.microsoft.us",
        "smtp.office365.us",
    ),
    "usgov-dod": Cloud(
        "usgov-dod",
        "login.microsoftonline.us",
        "https://outlook-dod.office365.us",
        "https://dod-graph.microsoft.us",
        "outlook-dod.office365.us",
    ),
    "china": Cloud(
        "china",
        "login.partner.microsoftonline.cn",
        "https://partner.outlook.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "smtp.partner.outlook.cn",
    ),
}

_ALIASES = {
    "worldwide": "global",
    "public": "global",
    "gcc": "global",
    "gcc-high": "usgov",
    "gcchigh": "usgov",
    "usgovernment": "usgov",
    "dod": "usgov-dod",
    "21vianet": "china",
}

CLOUD_NAMES = (*CLOUDS, "sandbox")

_HOST_TO_CLOUD = {
    "login.microsoftonline.com": "global",
    "login.microsoft.com": "global",
    "login.windows.net": "global",
    "sts.windows.net": "global",
    "login.microsoftonline.us": "usgov",
    "login.usgovcloudapi.net": "usgov",
    "login-us.microsoftonline.com": "usgov",
    "login.partner.microsoftonline.cn": "china",
    "login.chinacloudapi.cn": "china",
}
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def normalize_cloud_name(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in CLOUD_NAMES:
        raise InvalidInputError("cloud", "one of " + ", ".join(CLOUD_NAMES), name)
    return key


def cloud_for_authority_host(host: str) -> str:
    """The cloud a login host belongs to (``host`` may carry a port)."""
    bare = host.lower()
    if bare.split(":")[0] in _LOCAL_HOSTS or bare.startswith("[::1]"):
        return "sandbox"
    name = _HOST_TO_CLOUD.get(bare)
    if name is None:
        raise InvalidInputError(
            "token URI host",
            "a Microsoft login host such as login.microsoftonline.com "
            "(US Gov: login.microsoftonline.us, China: login.partner.microsoftonline.cn)",
            host,
        )
    return name


def load_sandbox_description(path: Path) -> dict[str, object]:
    """Read the JSON file a running ``mailgate sandbox`` writes about itself."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"this credential uses the sandbox cloud, but no sandbox description is at {path}.",
            "start it with `mailgate sandbox` (or set MAILGATE_SANDBOX to its sandbox.json).",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"the sandbox description {path} cannot be read: {exc}.",
            "restart `mailgate sandbox`, which rewrites it.",
        ) from exc
    if not isinstance(data, dict) or "authority_host" not in data:
        raise ConfigurationError(
            f"{path} is not a sandbox description (no authority_host).",
            "restart `mailgate sandbox`, which rewrites it.",
        )
    return data


def get_cloud(name: str, sandbox_file: Path | None = None) -> Cloud:
    """The :class:`Cloud` called ``name``; the sandbox is resolved from its description file."""
    key = normalize_cloud_name(name)
    if key != "sandbox":
        return CLOUDS[key]
    from mailgate.paths import sandbox_description_file

    description = load_sandbox_description(sandbox_file or sandbox_description_file())
    resources = description.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    base = CLOUDS["global"]
    return Cloud(
        "sandbox",
        str(description["authority_host"]),
        str(resources.get("exchange", base.exchange_resource)),
        str(resources.get("graph", base.graph_resource)),
        "127.0.0.1",
        ca_file=str(description["ca_file"]) if description.get("ca_file") else None,
    )
