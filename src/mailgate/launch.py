"""The ``mailgate`` command's entry point: the CLI imported with the garbage collector off.

Start-up imports typer, pydantic, asyncio (and SQLAlchemy for some commands): hundreds of
thousands of objects that all live until the process exits. Collecting while they are made
only scans them again and again (~10 ms of a 120 ms import here); so the collector is off
until the CLI is imported, then :func:`mailgate.processes.tune_gc_for_bulk_work` freezes what
start-up made and turns it back on with a higher threshold. Only for mailgate's own process:
importing :mod:`mailgate.cli` from another program leaves that program's collector alone.
"""

from __future__ import annotations

import gc

__all__ = ["main"]


def main() -> None:
    """Run the command line (``mailgate`` and ``python -m mailgate``)."""
    gc.disable()
    try:
        from mailgate.cli import main as run
    finally:
        gc.enable()
    run()
