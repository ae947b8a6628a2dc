"""A widget's operating hours and holidays, and whether it is open at a moment.

Pure: `is_open(hours, now)` reads only its arguments, so the rule is tested with any
clock. The hours are wall-clock times in an IANA time zone (`Europe/Paris`), read with
Python's `zoneinfo` (the system's tz database, or the `tzdata` package), so "09:00" is
09:00 local on both sides of a daylight-saving change. A holiday is a local date on which
the widget is closed all day. Outside the hours the widget is unavailable (no chat can
start); `offline` says what a page shows then: nothing (`hidden`), or the message form
that becomes a case (`message`, the ticket fallback's form, connector/crm/tickets.py).

The engine asks through `design_is_open` from `widget_on`
(connector/chat/actions/conversations.py), one line.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "WEEKDAYS",
    "OperatingHours",
    "design_is_open",
    "is_open",
    "takes_offline_messages",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
# A year of public holidays with room for a second; more is a mistake.
MAX_HOLIDAYS = 400
# Split shifts (morning, afternoon, evening) and a little more.
MAX_SPANS_PER_DAY = 6
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _minutes(span: str) -> tuple[int, int]:
    match = _SPAN.match(span)
    if match is None:
        raise ValueError(f"{span!r} is not a time span like 09:00-17:30")
    sh, sm, eh, em, end_24, _ = match.groups()
    start = int(sh) * 60 + int(sm)
    end = 24 * 60 if end_24 else int(eh) * 60 + int(em)
    return start, end


def _span(value: str) -> str:
    start, end = _minutes(value)
    if end <= start:
        # Past midnight is two spans, one on each day: each day reads as the admin wrote it.
        raise ValueError(f"{value!r} ends before it starts (write 22:00-24:00 and 00:00-02:00)")
    return value


Span = Annotated[str, Field(max_length=11), AfterValidator(_span)]


class OperatingHours(BaseModel):
    """When the widget takes chats. Off (`enabled` false): always, as before."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    enabled: bool = False
    time_zone: str = Field(default="UTC", max_length=64)
    # Day -> "HH:MM-HH:MM" spans; a day not listed is closed.
    weekly: dict[Weekday, tuple[Span, ...]] = Field(default_factory=dict)
    holidays: tuple[date, ...] = Field(default=(), max_length=MAX_HOLIDAYS)
    offline: Literal["hidden", "message"] = "hidden"
    # Shown while a visitor waits for an agent, e.g. "We usually reply within 5 minutes".
    reply_time: str = Field(default="", max_length=100)

    @field_validator("time_zone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            _zone(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like Europe/Paris") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _few_spans(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for day, spans in value.items():
            if len(spans) > MAX_SPANS_PER_DAY:
                raise ValueError(f"{day}: at most {MAX_SPANS_PER_DAY} time spans")
        return value


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    # ZoneInfo refuses path tricks ("../etc") with ValueError; a name it cannot find
    # raises ZoneInfoNotFoundError.
    return ZoneInfo(name)


def is_open(hours: OperatingHours, now: datetime) -> bool:
    """Whether `now` (timezone-aware) falls in the hours and on no holiday."""
    if not hours.enabled:
        return True
    local = now.astimezone(_zone(hours.time_zone))
    if local.date() in hours.holidays:
        return False
    minute = local.hour * 60 + local.minute
    spans = hours.weekly.get(WEEKDAYS[local.weekday()], ())  # type: ignore[call-overload]
    return any(start <= minute < end for start, end in map(_minutes, spans))


def _hours_of(design: Any) -> OperatingHours | None:
    # The engine sees the design through a narrow port (connector/chat/ports.py); the
    # Directory hands it the full WidgetDesign, which carries the hours.
    hours = getattr(design, "operating_hours", None)
    return hours if isinstance(hours, OperatingHours) else None


def design_is_open(design: Any, now: datetime) -> bool:
    """Whether a widget with `design` takes chats at `now` (no hours set: always)."""
    hours = _hours_of(design)
    return hours is None or is_open(hours, now)


def takes_offline_messages(design: Any, now: datetime) -> bool:
    """Whether the widget, closed at `now`, shows the message form instead of nothing."""
    hours = _hours_of(design)
    return hours is not None and hours.offline == "message" and not is_open(hours, now)
