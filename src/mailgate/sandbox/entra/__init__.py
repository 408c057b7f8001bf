"""Entra ID v2.0, emulated: the identity platform's HTTP app, token minting, client
authentication, grants and interactive sign-ins, OAuth parameter checks, AADSTS error replies,
sign-in pages.

May import: ``sandbox.directory`` (tenants, apps, users), ``sandbox.exchange`` (the store and
rules the mail routes need), ``sandbox.graph`` and ``sandbox.ews`` (mounted on the same app),
``sandbox.pki``; never ``mailgate`` production packages other than ``errors`` and ``secret``.
"""

__all__: list[str] = []
