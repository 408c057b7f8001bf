"""``mailgate demo``: the whole product end to end against the embedded sandbox, one module per
tour (credentials and tokens in ``run``, then ``mail``, ``importing``, ``outbox``).

Written against the public Python API, as a user's program would be; may import the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.demo.run import run_demo

__all__ = ["run_demo"]

__getattr__, __dir__ = lazy_face(__name__, {"run_demo": "run"})
