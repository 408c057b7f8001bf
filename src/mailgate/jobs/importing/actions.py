"""What an import does to the mailbox: post-processing by the policy, and setting oversize mail
aside. The folders it needs (``--move-to``, the oversize folder) are created once per run."""

from __future__ import annotations

from collections.abc import Sequence

from mailgate.jobs.importing.postprocess import Policy
from mailgate.protocols.base import Mailbox, MessageRef, Operation
from mailgate.settings import PostProcess

__all__ = ["MailboxActions"]


class MailboxActions:
    """Acts on ``mailbox`` as ``policy`` says."""

    def __init__(self, mailbox: Mailbox, policy: Policy) -> None:
        self.box = mailbox
        self.policy = policy
        self.created: set[str] = set()

    async def _ensure_folder(self, name: str) -> None:
        if name in self.created or Operation.CREATE_FOLDER not in self.box.operations:
            return
        await self.box.create_folder(name)
        self.created.add(name)

    async def postprocess(self, refs: Sequence[MessageRef]) -> None:
        """Keep, mark read, move, delete (to Deleted Items) or permanently delete ``refs``."""
        after = self.policy.after
        if after is PostProcess.KEEP or not refs:
            return
        if after is PostProcess.MARK_READ:
            await self.box.set_flags(refs, seen=True)
        elif after is PostProcess.MOVE:
            assert self.policy.move_to is not None
            await self._ensure_folder(self.policy.move_to)
            await self.box.move(refs, self.policy.move_to)
        elif after is PostProcess.DELETE:
            await self.box.delete(refs)
        else:
            await self.box.delete_permanently(refs)

    async def set_aside(self, refs: Sequence[MessageRef]) -> str:
        """Move oversize ``refs`` to the oversize folder where the protocol can move; returns
        the note that says what was done."""
        folder = self.policy.oversize_folder
        limit = self.policy.max_size
        if folder is None:
            protocol = self.box.protocol.value
            return f"over {limit} bytes: left in the mailbox ({protocol} cannot move)"
        await self._ensure_folder(folder)
        await self.box.move(refs, folder)
        return f"over {limit} bytes: moved to {folder!r}, not fetched"
