"""``mailgate demo``: the whole product end to end against the embedded sandbox, one module per
tour (credentials and tokens in ``run``, then ``mail``, ``importing``, ``outbox``).

Written against the public Python API, as a user's program would be; may import the sandbox.
"""

__all__: list[str] = []
