"""`RedisLiveState`: the live state on Redis, shared by every service process of an org.

It implements `LiveState` and `LivePrimitives` (connector/chat/state.py) with the same
meaning as `SqliteLiveState`; docs/scale-out.md maps every piece of state and every
guarantee of docs/protocol.md to the keys and scripts below. Each step is one Lua script
or one MULTI/EXEC, atomic on its own keys: nothing serialises unrelated chats, and no
lock here is ever held across a Dataverse request.

Keys (``P`` is the prefix, ``crmchat:`` by default; ``{c:<id>}`` is a hash tag, so one
conversation's keys stay in one slot of a Redis Cluster and its scripts stay legal):

- ``P{c:<id>}:conv``   the conversation as JSON (same fields as SQLite's)
- ``P{c:<id>}:msgs``   list of message JSON; a message's seq is its position + 1, so
  seq 1..N without gaps or doubles is the shape of the list itself
- ``P{c:<id>}:cids``   hash client_id -> seq (the idempotency of `message.send`)
- ``P{c:<id>}:count``  messages that are not system lines (the history's count)
- ``P{c:<id>}:accept`` the agent whose accept won
- ``P:unfinished``     set of conversation ids `unfinished_conversations` returns
- ``P:finished``       sorted set of finished visitor chats by end time (what
  `finished_conversations` reads; `delete_conversation` drops them)
- ``P:visitor:<id>:ended``  sorted set of the visitor's ended chats by start time
- ``P:visitors``, ``P:agent_status``  hashes id -> JSON / status
- ``P:agent_idle``     hash agent id -> ISO time the agent became idle (routing's order)
- ``P:availability``  hash widget id -> "1"/"0", what its visitors were last told
- ``P:lease:<name>``   a lease: owner token with a PX expiry
- ``P:procs``          sorted set process id -> heartbeat expiry (ms, Redis's clock)
- ``P:presence:<process>``  hash member -> open sockets on that process
- ``P:once:<key>``     a one-shot claim (`claim_once`) with a PX expiry
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime
from typing import TypeVar, cast

import redis

from connector.chat.model import (
    AgentStatus,
    Conversation,
    ConversationState,
    HistoryEntry,
    Message,
    SenderKind,
    VisitorPresence,
)
from connector.chat.state import (
    HISTORY_LIMIT,
    AppendResult,
    DuplicateMessage,
    _conversation_from_row,
    _conversation_to_json,
    _time,
    _visitor_from_json,
    _visitor_to_json,
    derive_message_fields,
)

__all__ = ["DEFAULT_PREFIX", "RedisLiveState"]

T = TypeVar("T")

DEFAULT_PREFIX = "crmchat:"
# Conversations read per MGET by `unfinished_by_state`: one round trip for a busy org,
# no single reply of unbounded size.
MGET_CHUNK = 500

# Returns {1, seq} when stored, {0, seq} when the client_id was taken.
_APPEND = """
local seq = redis.call('HGET', KEYS[2], ARGV[1])
if seq then return {0, tonumber(seq)} end
local n = redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], n)
if ARGV[3] == '1' then redis.call('INCR', KEYS[3]) end
return {1, n}
"""

# `add_message` with the seq the caller chose: 1 stored, 0 duplicate, -1 a gap.
_ADD_AT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local n = redis.call('LLEN', KEYS[1])
local seq = tonumber(ARGV[4])
if seq <= n then return 0 end
if seq > n + 1 then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], seq)
if ARGV[3] == '1' then redis.call('INCR', KEYS[3]) end
return 1
"""

# `message.send` in one step (`relay_message`): KEYS msgs, cids, count, conv, the bus
# channel; ARGV client_id, message JSON, counted, then the bus bodies to publish with the
# seq. Returns {1, seq} stored and published, {0, seq} the client_id was taken, {-1, 0}
# the chat has ended (or is gone). The seq goes in front of each body (`{"seq":n,...`):
# RedisBus puts it in the event, so the events of a conversation leave in seq order.
_RELAY = """
local seq = redis.call('HGET', KEYS[2], ARGV[1])
if seq then return {0, tonumber(seq)} end
local conv = redis.call('GET', KEYS[4])
if not conv or cjson.decode(conv)['state'] == 'ended' then return {-1, 0} end
local n = redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], n)
if ARGV[3] == '1' then redis.call('INCR', KEYS[3]) end
for i = 4, #ARGV do
  redis.call('PUBLISH', KEYS[5], '{"seq":' .. n .. ',' .. string.sub(ARGV[i], 2))
end
return {1, n}
"""

_CLAIM = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

# 1 when the stored value changed (HSET answers 0 for an existing field, so compare).
_SWAP = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _now_ms() -> str:
    """Redis's own clock in a script, so every process agrees on what has expired."""
    return "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"


_BEAT = _now_ms() + "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) return 1"

# KEYS[1] procs, KEYS[2] this process's counts; ARGV member, delta, key prefix of counts.
_PRESENCE_CHANGE = (
    _now_ms()
    + """
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], tonumber(ARGV[2]))
if n <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
local total = 0
for _, proc in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local c = redis.call('HGET', ARGV[3] .. proc, ARGV[1])
  if c then total = total + tonumber(c) end
end
return total
"""
)

_LIVE_PROCESSES = _now_ms() + "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')"


def _message_json(message: Message) -> str:
    # No seq inside: the list position is the seq.
    return json.dumps(
        {
            "client_id": message.client_id,
            "sender_kind": message.sender_kind.value,
            "sender_id": message.sender_id,
            "sender_name": message.sender_name,
            "text": message.text,
            "sent_at": _time(message.sent_at),
            "attachment": message.attachment,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _message(conversation_id: str, seq: int, text: str | bytes) -> Message:
    d = json.loads(text)
    return Message(
        conversation_id=conversation_id,
        seq=seq,
        client_id=d["client_id"],
        sender_kind=SenderKind(d["sender_kind"]),
        sender_id=d["sender_id"],
        sender_name=d["sender_name"],
        text=d["text"],
        sent_at=datetime.fromisoformat(d["sent_at"]),
        attachment=d.get("attachment"),
    )


def _counted(message: Message) -> str:
    return "0" if message.sender_kind is SenderKind.SYSTEM else "1"


class RedisLiveState:
    """`LiveState` + `LivePrimitives` on one Redis (see the module docstring).

    Thread-safe (redis-py pools its connections); several processes may share one Redis.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._r = client
        self._p = prefix
        # Writes made through this object: the engine tells the other processes to reload
        # (connector/chat/org_sync.py) only after a change that wrote something.
        self.writes = 0
        # What those writes touched ("conversation:<id>", "visitor:<id>", "agent:<id>"), so
        # the other processes reload only that (`take_touched`, org_sync.py).
        self.touched: set[str] = set()
        self._append = client.register_script(_APPEND)
        self._relay = client.register_script(_RELAY)
        self._add_at = client.register_script(_ADD_AT)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._swap = client.register_script(_SWAP)
        self._beat = client.register_script(_BEAT)
        self._presence_change = client.register_script(_PRESENCE_CHANGE)
        self._live_processes = client.register_script(_LIVE_PROCESSES)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisLiveState:
        return cls(redis.Redis.from_url(url, decode_responses=True), prefix=prefix)

    # ----- keys

    def _c(self, conversation_id: str, what: str) -> str:
        return f"{self._p}{{c:{conversation_id}}}:{what}"

    def _msg_keys(self, conversation_id: str) -> list[str]:
        return [self._c(conversation_id, w) for w in ("msgs", "cids", "count")]

    # ----- LiveState

    def _wrote(self, member: str) -> None:
        self.writes += 1
        self.touched.add(member)

    def take_touched(self) -> set[str]:
        """What the writes since the last call touched (and forget it)."""
        touched, self.touched = self.touched, set()
        return touched

    def save_conversation(self, conversation: Conversation) -> None:
        self._wrote(f"conversation:{conversation.conversation_id}")
        c = conversation
        unfinished = c.state is not ConversationState.ENDED or (
            not c.finished and c.visitor_id is not None
        )
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._c(c.conversation_id, "conv"), _conversation_to_json(c))
        if unfinished:
            pipe.sadd(f"{self._p}unfinished", c.conversation_id)
        else:
            pipe.srem(f"{self._p}unfinished", c.conversation_id)
        if c.visitor_id is not None and c.state is ConversationState.ENDED:
            pipe.zadd(
                f"{self._p}visitor:{c.visitor_id}:ended",
                {c.conversation_id: c.started_at.timestamp()},
            )
            if c.finished and c.ended_at is not None:
                pipe.zadd(f"{self._p}finished", {c.conversation_id: c.ended_at.timestamp()})
        pipe.execute()

    def finished_conversations(
        self, *, ended_before: datetime, visitor_id: str | None = None
    ) -> list[Conversation]:
        if visitor_id is not None:
            ids = cast(list[str], self._r.zrange(f"{self._p}visitor:{visitor_id}:ended", 0, -1))
        else:
            ids = cast(
                list[str],
                self._r.zrangebyscore(f"{self._p}finished", "-inf", f"({ended_before.timestamp()}"),
            )
        found = []
        for start in range(0, len(ids), MGET_CHUNK):
            chunk = ids[start : start + MGET_CHUNK]
            stored = cast(list[str | None], self._r.mget([self._c(i, "conv") for i in chunk]))
            for conversation_id, data in zip(chunk, stored, strict=True):
                if data is None:
                    continue
                c = _conversation_from_row(conversation_id, data)
                if (
                    c.finished
                    and c.state is ConversationState.ENDED
                    and c.ended_at is not None
                    and c.ended_at < ended_before
                ):
                    found.append(c)
        return found

    def delete_conversation(self, conversation_id: str) -> bool:
        c = self.conversation(conversation_id)
        if c is None or c.state is not ConversationState.ENDED:
            return False
        if not c.finished and c.visitor_id is not None:
            return False
        # Not counted in `writes`: a finished chat is in no engine's working copy, and the
        # retention job deletes outside the engine's changes.
        files = [
            self._c(conversation_id, f"file:{m.attachment['id']}")
            for m in self.messages(conversation_id)
            if m.attachment and m.attachment.get("id")
        ]
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(
            *(self._c(conversation_id, w) for w in ("conv", "msgs", "cids", "count", "accept")),
            *files,
        )
        pipe.srem(f"{self._p}unfinished", conversation_id)
        pipe.zrem(f"{self._p}finished", conversation_id)
        if c.visitor_id is not None:
            pipe.zrem(f"{self._p}visitor:{c.visitor_id}:ended", conversation_id)
        pipe.execute()
        return True

    def conversation(self, conversation_id: str) -> Conversation | None:
        data = cast(str | None, self._r.get(self._c(conversation_id, "conv")))
        if data is None:
            return None
        conversation = _conversation_from_row(conversation_id, data)
        rows = [
            {"seq": seq, **json.loads(text)}
            for seq, text in enumerate(self._lrange(conversation_id, 0), start=1)
        ]
        return derive_message_fields(conversation, rows)

    def conversation_head(self, conversation_id: str) -> Conversation | None:
        """The conversation as stored, without reading its messages (one GET): its
        `last_seq`, `last_visitor_message_at` and `waiting_since` are not derived."""
        data = cast(str | None, self._r.get(self._c(conversation_id, "conv")))
        return _conversation_from_row(conversation_id, data) if data is not None else None

    def unfinished_by_state(self) -> dict[str, int]:
        """How many of `unfinished_conversations` are in each state (the metrics' gauge):
        the index set and one MGET per `MGET_CHUNK` chats, no message list read."""
        ids = sorted(cast(set[str], self._r.smembers(f"{self._p}unfinished")))
        counts: dict[str, int] = {}
        for start in range(0, len(ids), MGET_CHUNK):
            chunk = ids[start : start + MGET_CHUNK]
            stored = cast(list[str | None], self._r.mget([self._c(i, "conv") for i in chunk]))
            for data in stored:
                if data is not None:
                    state = str(json.loads(data)["state"])
                    counts[state] = counts.get(state, 0) + 1
        return counts

    def unfinished_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation when `unfinished_conversations` would return it, else None."""
        if not self._r.sismember(f"{self._p}unfinished", conversation_id):
            return None
        return self.conversation(conversation_id)

    def unfinished_conversations(self) -> list[Conversation]:
        ids = cast(set[str], self._r.smembers(f"{self._p}unfinished"))
        found = (self.conversation(conversation_id) for conversation_id in sorted(ids))
        return [c for c in found if c is not None]

    def add_message(self, conversation: Conversation, message: Message) -> None:
        self._wrote(f"conversation:{message.conversation_id}")
        args: list[str | int] = [
            message.client_id,
            _message_json(message),
            _counted(message),
            message.seq,
        ]
        keys = self._msg_keys(message.conversation_id)
        outcome = int(cast(int, self._add_at(keys=keys, args=args)))
        if outcome == 0:
            raise DuplicateMessage(message.conversation_id, message.client_id)
        if outcome < 0:
            raise ValueError(f"seq {message.seq} would leave a gap in {message.conversation_id}")

    def message_by_client_id(self, conversation_id: str, client_id: str) -> Message | None:
        seq = cast(str | None, self._r.hget(self._c(conversation_id, "cids"), client_id))
        if seq is None:
            return None
        text = cast(str | None, self._r.lindex(self._c(conversation_id, "msgs"), int(seq) - 1))
        return _message(conversation_id, int(seq), text) if text is not None else None

    def _lrange(self, conversation_id: str, since_seq: int) -> list[str]:
        return cast(
            list[str], self._r.lrange(self._c(conversation_id, "msgs"), max(0, since_seq), -1)
        )

    def messages(self, conversation_id: str, *, since_seq: int = 0) -> list[Message]:
        start = max(0, since_seq)
        return [
            _message(conversation_id, seq, text)
            for seq, text in enumerate(self._lrange(conversation_id, start), start=start + 1)
        ]

    def history(self, visitor_id: str, *, exclude: str | None = None) -> list[HistoryEntry]:
        ids = cast(
            list[str],
            self._r.zrevrange(f"{self._p}visitor:{visitor_id}:ended", 0, HISTORY_LIMIT),
        )
        entries = []
        for conversation_id in ids:
            if conversation_id == exclude:
                continue
            data = cast(str | None, self._r.get(self._c(conversation_id, "conv")))
            if data is None:
                continue
            c = _conversation_from_row(conversation_id, data)
            count = cast(str | None, self._r.get(self._c(conversation_id, "count")))
            entries.append(
                HistoryEntry(
                    conversation_id=conversation_id,
                    started_at=c.started_at,
                    ended_at=c.ended_at,
                    agent=", ".join(p.name for p in c.participants if p.kind == "agent"),
                    message_count=int(count or 0),
                )
            )
        entries.sort(key=lambda e: e.started_at, reverse=True)
        return entries[:HISTORY_LIMIT]

    def save_attachment(self, conversation_id: str, attachment_id: str, data: bytes) -> None:
        # The client decodes replies as text: the bytes travel as base64.
        self._r.set(
            self._c(conversation_id, f"file:{attachment_id}"), base64.b64encode(data).decode()
        )

    def attachment_data(self, conversation_id: str, attachment_id: str) -> bytes | None:
        text = self._r.get(self._c(conversation_id, f"file:{attachment_id}"))
        return base64.b64decode(cast(str, text)) if text is not None else None

    def save_visitor(self, presence: VisitorPresence) -> None:
        self._wrote(f"visitor:{presence.visitor_id}")
        self._r.hset(f"{self._p}visitors", presence.visitor_id, _visitor_to_json(presence))

    def visitor(self, visitor_id: str) -> VisitorPresence | None:
        data = cast(str | None, self._r.hget(f"{self._p}visitors", visitor_id))
        return _visitor_from_json(visitor_id, data) if data is not None else None

    def delete_visitor(self, visitor_id: str) -> bool:
        self._wrote(f"visitor:{visitor_id}")
        return bool(self._r.hdel(f"{self._p}visitors", visitor_id))

    def save_agent_status(self, agent_id: str, status: AgentStatus) -> None:
        self._wrote(f"agent:{agent_id}")
        self._r.hset(f"{self._p}agent_status", agent_id, status.value)

    def agent_statuses(self) -> dict[str, AgentStatus]:
        stored = cast(dict[str, str], self._r.hgetall(f"{self._p}agent_status"))
        return {agent_id: AgentStatus(status) for agent_id, status in stored.items()}

    def agent_status(self, agent_id: str) -> AgentStatus | None:
        """One agent's stored status (None when never set)."""
        stored = cast(str | None, self._r.hget(f"{self._p}agent_status", agent_id))
        return AgentStatus(stored) if stored is not None else None

    def save_agent_idle(self, agent_id: str, since: datetime) -> None:
        self._wrote(f"agent:{agent_id}")
        self._r.hset(f"{self._p}agent_idle", agent_id, since.isoformat())

    def agent_idle_times(self) -> dict[str, datetime]:
        stored = cast(dict[str, str], self._r.hgetall(f"{self._p}agent_idle"))
        return {agent_id: datetime.fromisoformat(at) for agent_id, at in stored.items()}

    def agent_idle(self, agent_id: str) -> datetime | None:
        """One agent's stored idle time (None when never offered a chat)."""
        stored = cast(str | None, self._r.hget(f"{self._p}agent_idle", agent_id))
        return datetime.fromisoformat(stored) if stored is not None else None

    def close(self) -> None:
        self._r.close()

    # ----- LivePrimitives

    def append_message(self, draft: Message) -> AppendResult:
        self._wrote(f"conversation:{draft.conversation_id}")
        stored, seq = cast(
            list[int],
            self._append(
                keys=self._msg_keys(draft.conversation_id),
                args=[draft.client_id, _message_json(draft), _counted(draft)],
            ),
        )
        if stored:
            return AppendResult(replace(draft, seq=int(seq)), False)
        text = cast(str, self._r.lindex(self._c(draft.conversation_id, "msgs"), int(seq) - 1))
        return AppendResult(_message(draft.conversation_id, int(seq), text), True)

    def append_message_later(self, draft: Message, then: Callable[[AppendResult], T]) -> Future[T]:
        # Redis answers once the script ran (and, with appendfsync always, is on disk):
        # nothing to wait for beyond the call itself.
        future: Future[T] = Future()
        future.set_result(then(self.append_message(draft)))
        return future

    def relay_message(
        self, draft: Message, bus_channel: str, bodies: list[str]
    ) -> AppendResult | None:
        """`append_message` and the publish of `bodies` on `bus_channel` in one script, for
        the relay path without the org lease: None when the chat has ended (or is gone)
        and the client_id is new. Not counted in `writes`: the other processes hear of the
        message on the bus, not through the change log (connector/chat/org_sync.py)."""
        cid = draft.conversation_id
        outcome, seq = cast(
            list[int],
            self._relay(
                keys=[*self._msg_keys(cid), self._c(cid, "conv"), bus_channel],
                args=[draft.client_id, _message_json(draft), _counted(draft), *bodies],
            ),
        )
        if int(outcome) < 0:
            return None
        if int(outcome) == 1:
            return AppendResult(replace(draft, seq=int(seq)), False)
        text = cast(str, self._r.lindex(self._c(cid, "msgs"), int(seq) - 1))
        return AppendResult(_message(cid, int(seq), text), True)

    def claim_accept(self, conversation_id: str, agent_id: str) -> str:
        self._wrote(f"conversation:{conversation_id}")
        return str(self._claim(keys=[self._c(conversation_id, "accept")], args=[agent_id]))

    def acquire_lease(self, name: str, owner: str, ttl_secs: float) -> bool:
        key = f"{self._p}lease:{name}"
        return bool(self._r.set(key, owner, nx=True, px=max(1, int(ttl_secs * 1000))))

    def release_lease(self, name: str, owner: str) -> bool:
        return bool(self._release(keys=[f"{self._p}lease:{name}"], args=[owner]))

    def presence_beat(self, process_id: str, ttl_secs: float) -> None:
        self._beat(keys=[f"{self._p}procs"], args=[process_id, int(ttl_secs * 1000)])

    def presence_change(self, process_id: str, member: str, delta: int) -> int:
        self._wrote(member)
        return int(
            cast(
                int,
                self._presence_change(
                    keys=[f"{self._p}procs", f"{self._p}presence:{process_id}"],
                    args=[member, delta, f"{self._p}presence:"],
                ),
            )
        )

    def presence_counts(self) -> dict[str, int]:
        live = cast(list[str], self._live_processes(keys=[f"{self._p}procs"]))
        totals: dict[str, int] = {}
        for process_id in live:
            counts = cast(dict[str, str], self._r.hgetall(f"{self._p}presence:{process_id}"))
            for member, count in counts.items():
                totals[member] = totals.get(member, 0) + int(count)
        return {member: n for member, n in totals.items() if n > 0}

    def presence_count(self, member: str) -> int:
        """`presence_counts()[member]` (0 when absent), reading only that member."""
        live = cast(list[str], self._live_processes(keys=[f"{self._p}procs"]))
        pipe = self._r.pipeline(transaction=False)
        for process_id in live:
            pipe.hget(f"{self._p}presence:{process_id}", member)
        return max(0, sum(int(count) for count in pipe.execute() if count is not None))

    def presence_forget(self, process_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(f"{self._p}presence:{process_id}")
        pipe.zrem(f"{self._p}procs", process_id)
        pipe.execute()

    def swap_availability(self, widget_id: str, available: bool) -> bool:
        self.writes += 1
        keys = [f"{self._p}availability"]
        return bool(self._swap(keys=keys, args=[widget_id, "1" if available else "0"]))

    def claim_once(self, key: str, ttl_secs: float) -> bool:
        # Not counted in `writes`: nothing in the engine's working copy changes.
        once = f"{self._p}once:{key}"
        return bool(self._r.set(once, "1", nx=True, px=max(1, int(ttl_secs * 1000))))

    def dead_processes(self) -> list[str]:
        seconds, micros = self._r.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return cast(list[str], self._r.zrangebyscore(f"{self._p}procs", "-inf", now_ms))
