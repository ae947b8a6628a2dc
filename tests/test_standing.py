"""A signed-in user's roles, re-read from Dataverse at most once a minute."""

from __future__ import annotations

from typing import Any

import pytest

from connector.dataverse import ConnectionFailed
from connector.web.auth import STANDING_MAX_AGE_SECS, UserStanding

USER = "6a1f0c2e-0000-4000-8000-000000000001"


class Dataverse:
    """Answers a systemuser and its one role until `down` is set."""

    def __init__(self) -> None:
        self.down = False
        self.disabled = False
        self.calls = 0

    def retrieve(self, entity_set: str, record_id: str, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise ConnectionFailed("no route", "u")
        return {"isdisabled": self.disabled}

    def list_related(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if args[2] == "systemuserroles_association":
            return [{"name": "CRM Chat Agent"}]
        return []


def test_roles_are_cached_for_a_minute_then_read_again() -> None:
    now = [0.0]
    dataverse = Dataverse()
    standing = UserStanding(dataverse, clock=lambda: now[0])
    assert standing.roles(USER) == {"CRM Chat Agent"}
    dataverse.disabled = True
    now[0] += STANDING_MAX_AGE_SECS - 1
    assert standing.roles(USER) == {"CRM Chat Agent"} and dataverse.calls == 1
    now[0] += 2
    assert standing.roles(USER) == frozenset()


def test_an_unreachable_dataverse_keeps_the_last_answer_but_never_invents_one() -> None:
    now = [0.0]
    dataverse = Dataverse()
    standing = UserStanding(dataverse, clock=lambda: now[0])
    assert standing.roles(USER) == {"CRM Chat Agent"}
    dataverse.down = True
    now[0] += STANDING_MAX_AGE_SECS + 1
    assert standing.roles(USER) == {"CRM Chat Agent"}  # not everyone signed out at once
    with pytest.raises(ConnectionFailed):
        standing.roles("6a1f0c2e-0000-4000-8000-000000000002")  # never seen: no guess
