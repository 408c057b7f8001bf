"""Print a :class:`~mailgate.admin.plan.SetupPlan` as plain text, Markdown or JSON.

Pure string functions; the CLI writes their result to stdout unchanged (no rich markup), so a
plan can be pasted into a ticket or piped into ``jq``.
"""

from __future__ import annotations

import json
from typing import Any

from mailgate.admin.plan import Permission, SetupPlan
from mailgate.protocols.base import Protocol

__all__ = [
    "FORMATS",
    "PROTOCOL_NAMES",
    "plan_to_dict",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
]

FORMATS = ("text", "markdown", "json")
PROTOCOL_NAMES = {
    Protocol.IMAP: "IMAP",
    Protocol.POP3: "POP",
    Protocol.SMTP: "SMTP",
    Protocol.EWS: "EWS",
    Protocol.GRAPH: "Microsoft Graph",
}


def _title(plan: SetupPlan) -> str:
    req = plan.request
    kind = "app-only" if req.flow.app_only else "delegated"
    return f"Setup plan: {PROTOCOL_NAMES[req.protocol]} with {req.flow.value} ({kind})"


def _perm_line(perm: Permission) -> str:
    guid = f" [{perm.guid}]" if perm.guid else ""
    return f"{perm.api.name} > {perm.type} > {perm.name}{guid}: {perm.why}"


def plan_to_dict(plan: SetupPlan) -> dict[str, Any]:
    """A JSON-ready view of the plan; keys are stable for scripts."""
    req = plan.request
    return {
        "protocol": req.protocol.value,
        "flow": req.flow.value,
        "app_only": req.flow.app_only,
        "cloud": req.cloud,
        "tenant": req.tenant,
        "client_id": req.client_id,
        "sp_object_id": req.sp_object_id,
        "mailboxes": list(req.mailboxes),
        "permissions": [
            {
                "api": p.api.name,
                "resource_app_id": p.api.app_id,
                "type": p.type,
                "name": p.name,
                "id": p.guid,
                "why": p.why,
            }
            for p in plan.permissions
        ],
        "admin_consent_url": plan.admin_consent_url,
        "platform_settings": list(plan.platform_settings),
        "credential": list(plan.credential_steps),
        "powershell": [
            {
                "title": b.title,
                "explanation": b.explanation,
                "optional": b.optional,
                "lines": list(b.lines),
            }
            for b in plan.powershell
        ],
        "notes": list(plan.notes),
        "mailgate_commands": list(plan.mailgate_commands),
    }


def render_json(plan: SetupPlan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2) + "\n"


def render_text(plan: SetupPlan) -> str:
    """Numbered sections, indented commands: readable in a terminal."""
    out = [_title(plan), "=" * len(_title(plan)), ""]
    step = 0

    def section(name: str) -> None:
        nonlocal step
        step += 1
        out.append(f"{step}. {name}")

    section("API permissions (App registrations > API permissions > Add a permission)")
    for perm in plan.permissions:
        out.append(f"   - {_perm_line(perm)}")
    api_ids = sorted({(p.api.name, p.api.app_id) for p in plan.permissions})
    for name, app_id in api_ids:
        out.append(f"     ({name} resource app id {app_id})")
    out.append("")
    section("Grant admin consent (button on that page, or have an admin open):")
    out += [f"   {plan.admin_consent_url}", ""]
    section("Platform settings (Authentication)")
    out += [f"   - {s}" for s in plan.platform_settings] or ["   - none needed for app-only."]
    out.append("")
    section("Credential")
    out += [f"   - {s}" for s in plan.credential_steps]
    out.append("")
    section("Exchange Online PowerShell")
    if not plan.powershell:
        out.append("   - none needed.")
    for block in plan.powershell:
        label = " (optional)" if block.optional else ""
        out.append(f"   # {block.title}{label}: {block.explanation}")
        out += [f"     {line}" for line in block.lines]
    out.append("")
    section("mailgate")
    out += [f"     {c}" for c in plan.mailgate_commands]
    if plan.notes:
        out += ["", "Notes:"]
        out += [f"   - {n}" for n in plan.notes]
    return "\n".join(out) + "\n"


def render_markdown(plan: SetupPlan) -> str:
    """Headings, a permission table and fenced code: for docs and tickets."""
    out = [f"### {_title(plan)}", "", "**API permissions**", ""]
    out += ["| API (resource app id) | Type | Permission | Why |", "|---|---|---|---|"]
    for p in plan.permissions:
        name = f"`{p.name}` ({p.guid})" if p.guid else f"`{p.name}`"
        out.append(f"| {p.api.name} ({p.api.app_id}) | {p.type} | {name} | {p.why} |")
    out += ["", f"**Admin consent**: `{plan.admin_consent_url}`", ""]
    out.append("**Platform settings**: " + (" ".join(plan.platform_settings) or "none (app-only)."))
    out += ["", "**Credential**", ""]
    out += [f"- {s}" for s in plan.credential_steps]
    if plan.powershell:
        out += ["", "**Exchange Online PowerShell**", ""]
        for block in plan.powershell:
            label = " (optional)" if block.optional else ""
            out += [f"*{block.title}{label}*: {block.explanation}", "", "```powershell"]
            out += list(block.lines)
            out += ["```", ""]
    else:
        out += ["", "**Exchange Online PowerShell**: none needed.", ""]
    out += ["**mailgate**", "", "```sh", *plan.mailgate_commands, "```"]
    if plan.notes:
        out += ["", "**Notes**", ""]
        out += [f"- {n}" for n in plan.notes]
    return "\n".join(out) + "\n"


def render(plan: SetupPlan, fmt: str) -> str:
    """The plan in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan)
