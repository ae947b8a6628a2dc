"""Operating hours and holidays: the pure rule (time zones, DST, holidays) and what a
visitor notices (no chat outside the hours, the message form as the offline mode)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import BOB, FIELDS, SHOP
from pydantic import ValidationError
from test_chat_engine import World

from connector.chat.actions import conversations, visitors
from connector.chat.errors import ChatInvalid, ChatUnavailable
from connector.crm.design import WidgetDesign
from connector.crm.hours import OperatingHours, is_open, takes_offline_messages

PARIS_OFFICE = {
    "enabled": True,
    "time_zone": "Europe/Paris",
    "weekly": {d: ["09:00-12:30", "13:30-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-25"],
}


def hours(**more: Any) -> OperatingHours:
    return OperatingHours.model_validate({**PARIS_OFFICE, **more})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_hours_are_local_wall_clock_on_both_sides_of_a_dst_change() -> None:
    office = hours()
    # Europe/Paris moves to summer time on Sunday 29 March 2026: 09:15 local is 08:15 UTC
    # the Friday before and 07:15 UTC the Monday after.
    assert is_open(office, utc(2026, 3, 27, 8, 15)) is True
    assert is_open(office, utc(2026, 3, 27, 7, 15)) is False  # 08:15 CET, not yet open
    assert is_open(office, utc(2026, 3, 30, 7, 15)) is True  # 09:15 CEST
    assert is_open(office, utc(2026, 3, 30, 15, 15)) is False  # 17:15 CEST, closed
    # And back in October (25 October 2026): 16:45 local is 15:45 UTC after the change.
    assert is_open(office, utc(2026, 10, 26, 15, 45)) is True
    assert is_open(office, utc(2026, 10, 23, 15, 45)) is False  # 17:45 CEST


def test_lunch_weekends_and_holidays_are_closed() -> None:
    office = hours()
    assert is_open(office, utc(2026, 12, 2, 12, 0)) is False  # 13:00 local, lunch
    assert is_open(office, utc(2026, 12, 5, 10, 0)) is False  # a Saturday
    assert is_open(office, utc(2026, 12, 24, 10, 0)) is True
    assert is_open(office, utc(2026, 12, 25, 10, 0)) is False  # the holiday, a Friday
    # The holiday is the local date: 23:30 UTC on the 24th is already the 25th in Paris.
    late = hours(weekly={"thu": ["00:00-24:00"], "fri": ["00:00-24:00"]})
    assert is_open(late, utc(2026, 12, 24, 22, 30)) is True
    assert is_open(late, utc(2026, 12, 24, 23, 30)) is False


def test_hours_off_means_always_open() -> None:
    assert is_open(OperatingHours(), utc(2026, 12, 25, 3, 0)) is True
    assert WidgetDesign().operating_hours.enabled is False


@pytest.mark.parametrize(
    "bad",
    [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "../../etc/passwd"},
        {"weekly": {"mon": ["17:00-09:00"]}},
        {"weekly": {"mon": ["9:00-17:00"]}},
        {"weekly": {"mon": ["09:00-24:30"]}},
        {"weekly": {"funday": ["09:00-17:00"]}},
        {"weekly": {"mon": ["00:00-01:00"] * 7}},
        {"holidays": ["2026-02-30"]},
    ],
)
def test_bad_hours_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        hours(**bad)
    # A design with them is refused as a whole, as any bad design option is.
    with pytest.raises(ValidationError):
        WidgetDesign.model_validate({"operating_hours": {**PARIS_OFFICE, **bad}})


def world_with_hours(tmp_path: Path, **more: Any) -> World:
    world = World(tmp_path)
    shop = world.directory._widgets[SHOP]
    design = shop.design.model_copy(update={"operating_hours": hours(**more)})
    world.directory._widgets[SHOP] = dataclasses.replace(shop, design=design)
    return world


def test_outside_the_hours_no_chat_starts_and_open_pages_learn_it(tmp_path: Path) -> None:
    world = world_with_hours(tmp_path)
    world.clock.now = utc(2026, 12, 4, 15, 50)  # Friday 16:50 in Paris
    world.agent(BOB)
    visitor, inbox = world.visitor()
    assert inbox.last("hello.ok")["available"] is True

    world.clock.now = utc(2026, 12, 4, 16, 1)  # 17:01: closed
    conversations.do_refresh_availability(world.engine)  # the engine's sweep, each second
    assert inbox.last("availability")["available"] is False
    with pytest.raises(ChatUnavailable):
        visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)

    world.clock.now = utc(2026, 12, 7, 8, 0)  # Monday 09:00
    conversations.do_refresh_availability(world.engine)
    assert inbox.last("availability")["available"] is True
    visitors.do_visitor_start(world.engine, visitor, client_id="s2", fields=FIELDS)
    assert inbox.last("chat.started")["conversation_id"]


def test_the_message_form_is_the_offline_mode_the_admin_chose(tmp_path: Path) -> None:
    closed = utc(2026, 12, 25, 10, 0)
    assert takes_offline_messages(WidgetDesign(operating_hours=hours()), closed) is False
    message = WidgetDesign(operating_hours=hours(offline="message"))
    assert takes_offline_messages(message, closed) is True
    assert takes_offline_messages(message, utc(2026, 12, 24, 10, 0)) is False  # open

    # Hidden: the widget takes no message while closed; message: it does.
    world = world_with_hours(tmp_path)
    world.clock.now = closed
    visitor, _ = world.visitor()
    with pytest.raises(ChatInvalid):
        visitors.prepare_ticket(world.engine, visitor, fields=FIELDS | {"message": "Hello?"})
    world = world_with_hours(tmp_path / "message", offline="message")
    world.clock.now = closed
    visitor, _ = world.visitor()
    plan = visitors.prepare_ticket(world.engine, visitor, fields=FIELDS | {"message": "Hello?"})
    assert plan.visitor_id == "visitor-0001"


def test_a_holiday_list_reads_dates() -> None:
    assert hours().holidays == (date(2026, 12, 25),)
