"""The chat engine: every change to the live chat, and the events it publishes.

`ChatEngine` takes its collaborators as arguments (the `LiveState`, the `Hub`, the CRM
`Directory` and `Outbox`, the chat token signer, a clock), so tests drive it with fakes.
Each `do_*` method checks its input and permissions (raising `ChatError`), changes the
state, commits it, and only then publishes events through the hub. Answers to the caller
(e.g. `chat.started`) are queued in the same locked section as the events, so a client
always receives them in the order things happened. Recipients come from
`connector.chat.routing`.

Finishing a chat (the activity in Dataverse)
--------------------------------------------
Ending a visitor chat (either side) does not write the activity at once, because the
visitor may still rate it. The conversation gets `finish_due_at`:

- the visitor rates (`chat.rate`)             -> written now;
- the widget asks no rating, or the visitor is not connected when the chat ends -> now;
- the visitor's last tab closes               -> due in LEAVE_GRACE_SECS (a page change
  reconnects within that time and puts the rating window back);
- otherwise                                   -> due RATING_GRACE_SECS after the end.

`run_due_finishes()` (called every FINISH_SWEEP_SECS by `start()`'s thread) writes the
due ones. "Written" means ONE outbox item, key = conversation id, so a repeat (a crash
between the enqueue and marking the conversation finished) is a no-op in the outbox. The
due time is stored with the conversation, so a restart during the grace period loses
nothing. Agent-to-agent chats are not written to Dataverse.
"""

from __future__ import annotations

from connector.chat._agent_actions import AgentActions
from connector.chat._engine import (
    FINISH_SWEEP_SECS,
    LEAVE_GRACE_SECS,
    RATING_GRACE_SECS,
    VISIT_GAP_SECS,
)
from connector.chat._visitor_actions import VisitorActions

__all__ = [
    "FINISH_SWEEP_SECS",
    "LEAVE_GRACE_SECS",
    "RATING_GRACE_SECS",
    "VISIT_GAP_SECS",
    "ChatEngine",
]


class ChatEngine(VisitorActions, AgentActions):
    """The live chat: presence, conversations, routing, messages (see module docstring).

    `ChatEngine(state, hub, directory, outbox, tokens, *, clock, rating_grace_secs,
    leave_grace_secs)`; see `connector.chat._engine.EngineCore`.
    """
