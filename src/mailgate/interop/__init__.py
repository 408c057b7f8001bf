"""Test infrastructure beyond the sandbox: a real Dovecot that trusts sandbox tokens.

:mod:`mailgate.interop.dovecot` starts it (with helpers to load and stream large messages) and
:mod:`mailgate.interop.rss_probe` measures a fetch's memory in a fresh process. tests/interop and
the benchmarks in bench/ use them, so a benchmark never imports a test module. Production code
never imports this package; it needs the ``dovecot`` binary and is imported only where it runs.
"""

from __future__ import annotations

__all__: list[str] = []
