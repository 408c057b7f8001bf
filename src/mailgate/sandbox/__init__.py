"""A local emulation of the Microsoft identity platform (Entra ID v2.0) for tests and demos.

Served over HTTPS on 127.0.0.1 with a locally generated CA, so MSAL and azure-identity run
unmodified against it. Production code never imports this package; the CLI's ``sandbox`` and
``demo`` commands and :mod:`mailgate.testing` do, lazily. See ``docs/sandbox.md``.
"""

from __future__ import annotations

from mailgate.sandbox.directory.tenant import load_tenant_file, write_demo_tenant
from mailgate.sandbox.server import SandboxServer, run_forever

__all__ = ["SandboxServer", "load_tenant_file", "run_forever", "write_demo_tenant"]
