"""``--command``: one process per message, given the ``.eml`` path; exit 0 is delivered."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from mailgate.jobs.importing.delivery.common import Delivery, Destination
from mailgate.secret import Secret

__all__ = ["SHARED_ENV", "CommandDelivery", "command_env"]

SHARED_ENV = ("MAILGATE_HOME", "MAILGATE_CONFIG", "MAILGATE_SANDBOX")
"""Of mailgate's own variables a command inherits only these paths; the others may hold secrets
(master key, database URL with its password, webhook and alert keys)."""


def command_env(hidden: Secret | None) -> dict[str, str]:
    """This process's environment without mailgate's secrets, nor any variable whose value is
    ``hidden`` (the webhook key may come from any variable: settings say env:NAME)."""
    values = {hidden.reveal()} if hidden else set()
    return {
        k: v
        for k, v in os.environ.items()
        if (k in SHARED_ENV or not k.startswith("MAILGATE_")) and v not in values
    }


class CommandDelivery(Destination):
    """Runs ``argv + [path]`` for each message, one after the other, with the message's job,
    mailbox, folder, Message-ID and idempotency key in ``MAILGATE_*`` variables."""

    def __init__(
        self, argv: Sequence[str], *, job: str, mailbox: str, hidden: Secret | None
    ) -> None:
        self.argv = list(argv)
        self.job = job
        self.mailbox = mailbox
        self.hidden = hidden

    async def deliver(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            await self._run(delivery)

    async def _run(self, delivery: Delivery) -> None:
        assert delivery.path is not None
        env = command_env(self.hidden) | {
            "MAILGATE_IDEMPOTENCY_KEY": delivery.token,
            "MAILGATE_JOB": self.job,
            "MAILGATE_MAILBOX": self.mailbox,
            "MAILGATE_FOLDER": delivery.key.folder,
            "MAILGATE_MESSAGE_ID": delivery.item.message_id or "",
        }
        argv = [*self.argv, delivery.path]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            _, stderr = await process.communicate()
        except OSError as exc:
            delivery.error = f"command {argv[0]!r} could not start: {exc.strerror or exc}"
            return
        if process.returncode != 0:
            last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            delivery.error = f"command exited with {process.returncode} {last[0][:200]}".strip()
