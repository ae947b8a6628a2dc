"""The sweep's due timers (`engine.timers`), each kind to the action it stands for.

Every kind is armed from a time stored with its conversation (`finish_due_at`,
`wrapup_until`, `postponed_until`), and the engine re-arms them all when it starts
(`rearm_timers`), so a restart loses none with the in-memory `LocalTimers`; `RedisTimers`
keep them besides. A handler re-checks the conversation: a timer that outlived its reason
does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from connector.chat.actions.finishing import (
    FINISH_TIMER,
    WRAPUP_TIMER,
    finish_due,
    wrapup_due,
)
from connector.chat.actions.postpone import POSTPONE_TIMER, postpone_due
from connector.chat.model import Conversation
from connector.chat.timers import DueTimer

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["rearm_timers", "run_due_timers"]


_HANDLERS: dict[str, Callable[[ChatEngine, DueTimer], None]] = {
    FINISH_TIMER: finish_due,
    WRAPUP_TIMER: wrapup_due,
    POSTPONE_TIMER: postpone_due,
}


def run_due_timers(engine: ChatEngine) -> int:
    """Act on every timer due now; returns how many chats were written (built for the
    outbox). Called every FINISH_SWEEP_SECS by the engine's sweep."""
    with engine.changing():
        # A chat being written is in `engine.finishing` until this change is left.
        before = len(engine.finishing)
        for timer in engine.timers.claim_due():
            handler = _HANDLERS.get(timer.kind)
            if handler is not None:
                handler(engine, timer)
            engine.timers.done(timer)
        return len(engine.finishing) - before


def rearm_timers(engine: ChatEngine, conversation: Conversation) -> None:
    """Set the timers of a conversation loaded at start from its stored times (a time
    already past fires on the first sweep)."""
    conversation_id = conversation.conversation_id
    if conversation.wrapup_until is not None:
        engine.timers.set(WRAPUP_TIMER, conversation_id, conversation.wrapup_until)
    if conversation.postponed_until is not None and conversation.is_open:
        engine.timers.set(POSTPONE_TIMER, conversation_id, conversation.postponed_until)
