"""Microsoft Graph's mail subset, emulated (``/v1.0/users/{id}/...``): routes, one operation per
route, query options, delta queries, and the JSON resources of messages and folders.

May import: ``sandbox.exchange``, ``sandbox.entra`` (token checks, AADSTS errors).
"""

__all__: list[str] = []
