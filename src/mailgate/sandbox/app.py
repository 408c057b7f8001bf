"""The sandbox's one HTTPS application: Entra ID's endpoints, Graph's directory subset and, when
the server has mail, Graph mail and EWS, as on the real cloud's separate hosts (the sandbox
serves them all from one port).

The composition lives here, above the surfaces it mounts, so that no surface folder imports
another one's routes (docs/architecture.md, "who may import whom").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from mailgate.sandbox.entra.identity_platform import IdentityPlatform
from mailgate.sandbox.entra.routes import identity_routers
from mailgate.sandbox.graph.directory_routes import create_directory_router

if TYPE_CHECKING:
    from mailgate.sandbox.exchange.access import SandboxMail

__all__ = ["create_app"]


def create_app(
    platform: IdentityPlatform,
    mail: SandboxMail | None = None,
    *,
    certificate_dir: Path | None = None,
    on_directory_change: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the FastAPI application serving ``platform`` (and Graph/EWS over ``mail``).

    Graph's directory endpoints are always served; ``certificate_dir`` is where uploaded
    key credentials are written and ``on_directory_change`` runs after each change (the
    server persists the directory there).
    """
    app = FastAPI(title="mailgate sandbox identity platform", docs_url=None, redoc_url=None)
    app.include_router(
        create_directory_router(platform, certificate_dir, on_change=on_directory_change)
    )
    # Starlette tries routes in the order they were added: the directory's first, as always.
    for router in identity_routers(platform):
        app.include_router(router)
    if mail is not None:
        from mailgate.sandbox.ews.routes import create_ews_router
        from mailgate.sandbox.graph.routes import create_graph_router

        app.include_router(create_graph_router(mail))
        app.include_router(create_ews_router(mail))
    return app
