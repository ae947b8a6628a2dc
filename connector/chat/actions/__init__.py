"""Every change to the live chat, and the events it publishes: `do_*` functions by noun.

- `visitors`: what a visitor's tab does (hello, page, start, send, typing, end, rate, leave).
- `agents`: what an agent's console does (connect, status, accept, send, invite, transfer...).
- `conversations`: the chat lookups, messages and shared events the others build on, and
  the CRM side's reads (`access_*`) and its record link.
- `finishing`: ending a chat, and writing it to CRM (below).
- `identification`: finding the chat's contact beside the engine.

Each function takes the `connector.chat.engine.ChatEngine` first. A `do_*` checks its input
and permissions (raising `ChatError`), changes the state inside `engine.changing()`,
commits it, and only then publishes events through the hub. Answers to the caller (e.g.
`chat.started`) are queued in the same locked section as the events, so a client always
receives them in the order things happened. Recipients come from `connector.chat.routing`.

Finishing a chat (the activity in Dataverse)
--------------------------------------------
Ending a visitor chat (either side) does not write the activity at once, because the
visitor may still rate it. The conversation gets `finish_due_at`:

- the visitor rates (`chat.rate`)             -> written now;
- the widget asks no rating, or the visitor is not connected when the chat ends -> now;
- the visitor's last tab closes               -> due in LEAVE_GRACE_SECS (a page change
  reconnects within that time and puts the rating window back);
- otherwise                                   -> due RATING_GRACE_SECS after the end.

A chat the agent did not end (the visitor did, or it closed after they left) whose topics
define dispositions is first in *wrap-up*: its agent picks the disposition (`chat.end` on
the ended chat) within its topic's wrap-up time limit, and the write waits for that
(`finish_held`), so the activity is written once, with the disposition (or without it
once the time ran out).

`due.run_due_timers()` (called every FINISH_SWEEP_SECS by `engine.start()`'s
thread) writes the due ones. "Written" means ONE outbox item, key = conversation id, so a
repeat (a crash between the enqueue and marking the conversation finished) is a no-op in
the outbox. The due time is stored with the conversation, so a restart during the grace
period loses nothing. Agent-to-agent chats are not written to Dataverse.
"""
