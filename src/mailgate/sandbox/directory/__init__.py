"""The directory, emulated: tenants, app registrations, service principals and users read from
the tenant TOML, changes made while the sandbox runs, and Graph's directory routes
(``/v1.0/applications``, ``/servicePrincipals``, consent).

May import: ``sandbox.entra`` (AADSTS errors, the platform state), ``sandbox.exchange`` (the
PowerShell hook), ``sandbox.graph`` (error bodies).
"""

__all__: list[str] = []
