"""Exchange Online, emulated: the one mail store every protocol shares, the authorization rules
for mail protocols, the PowerShell steps Graph cannot do, request budgets (throttling of Graph
and EWS), the tenant's Exchange settings and mailboxes.

The protocol folders (``imap``, ``pop3``, ``smtp``, ``graph``, ``ews``) import from here; this
folder imports none of them.
"""

__all__: list[str] = []
