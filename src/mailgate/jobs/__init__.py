"""Jobs over mailboxes: get (list/save), and later import, outbox, triggers, approvals."""
