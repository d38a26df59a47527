"""The owner's commands from the chat, for one CallSession: hang up, transfer, say, notes, answers, hints,
and "ring me when a human answers" turned on mid-call.

Commands arrive on the bus at any moment (``put`` never blocks) and run one at a time in order, each in
the session's TaskGroup, so a slow one (a transfer waits for its announcement) delays the next command,
never the audio path. A failed command is reported to the chat and the call goes on.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from shared.events import CallCommand

if TYPE_CHECKING:
    from callserver.session import CallSession

TRANSFER_LINE = "One moment please, I'm transferring you now."
VOICELESS = frozenset({"transfer", "say", "instruct"})
"""What the agent cannot do once the call is bridged to the owner: it has no voice on the call."""


class ChatCommands:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        self._queue: asyncio.Queue[CallCommand] = asyncio.Queue()
        self._log = logger.bind(call_id=session.info.call_id)

    def put(self, cmd: CallCommand) -> None:
        self._queue.put_nowait(cmd)

    async def run(self) -> None:
        while True:
            cmd = await self._queue.get()
            try:
                await self._command(cmd)
            except Exception as exc:  # a failed command is reported, the call goes on
                self._log.warning("command {} failed: {!r}", cmd.kind, exc)
                self.s.log.action("command_failed", command=cmd.kind, error=str(exc))

    async def _command(self, cmd: CallCommand) -> None:
        s = self.s
        if s.bridge.joined and cmd.kind in VOICELESS:
            raise ValueError("you are connected to the call yourself: the agent has stepped out")
        if cmd.kind == "hangup":
            s.log.action("hangup", by="owner")
            await s.hang_up("hung up by the owner")
        elif cmd.kind == "transfer":
            await self._transfer(cmd.number or s.owner_number)
        elif cmd.kind == "say":
            await s._interrupt_if_speaking()
            s.log.action("say", text=cmd.text)
            s._start_reply(say=cmd.text)
        elif cmd.kind == "bridge":
            s.bridge.turn_on()
        elif s.owner.on_command(cmd):
            return  # the answer to an open ask_owner, or a hint tied to a line (never spoken)
        else:  # instruct, or a late answer: a note from the person the agent calls for
            s.history.add_note(cmd.text)
            s.log.action(cmd.kind, text=cmd.text)
            if not s._agent_speaking() and not s.turns.pending_text and s.hard.hold is None:
                s._start_reply(timer=None)

    async def _transfer(self, number: str) -> None:
        s = self.s
        if not number:
            raise ValueError("no number to transfer to")
        await s._interrupt_if_speaking()
        s.log.action("transfer", number=number, by="owner")
        s._start_reply(say=TRANSFER_LINE)
        # The owner asked: the callee talking over the announcement cuts the line, not the transfer.
        if s._reply is not None:
            await asyncio.wait({s._reply})
        await s.transfer(number)
