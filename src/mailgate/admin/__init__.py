"""Admin setup assistant: the Entra ID and Exchange Online steps an integration needs.

``plan`` builds the setup plan as data (pure); ``render`` prints it as text, Markdown or JSON.
"""

from __future__ import annotations

from mailgate.admin.plan import Flow, PlanRequest, SetupPlan, build_plan, make_request
from mailgate.admin.render import render

__all__ = ["Flow", "PlanRequest", "SetupPlan", "build_plan", "make_request", "render"]
