"""OData literals, GUID checks and `$filter` building: no value can change a query's shape."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connector.dataverse.odata import (
    and_,
    contains,
    endswith,
    eq,
    ge,
    gt,
    guid,
    is_null,
    le,
    lt,
    ne,
    not_,
    or_,
    quote,
    record_id_from_headers,
    startswith,
)

# One OData string literal: quotes around text whose own quotes are all doubled.
ONE_STRING_LITERAL = re.compile(r"^'(?:[^']|'')*'$")


def test_quote_doubles_single_quotes_in_strings() -> None:
    assert quote("O'Neil") == "'O''Neil'"
    assert quote("") == "''"


def test_quote_keeps_an_injection_attempt_inside_one_literal() -> None:
    literal = quote("x' or 1 eq 1 or 'a")
    assert literal == "'x'' or 1 eq 1 or ''a'"
    assert ONE_STRING_LITERAL.match(literal)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (2.5, "2.5"),
        (Decimal("19.990"), "19.990"),
        (uuid.UUID("3F2504E0-4F89-11D3-9A0C-0305E82C3301"), "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        (datetime(2025, 1, 1, 10, 0, tzinfo=UTC), "2025-01-01T10:00:00Z"),
        (date(2025, 3, 9), "2025-03-09"),
    ],
)
def test_quote_writes_each_type_as_its_odata_literal(value: object, expected: str) -> None:
    assert quote(value) == expected  # type: ignore[arg-type]


def test_quote_converts_aware_datetimes_to_utc() -> None:
    paris_winter = timezone(timedelta(hours=1))
    assert quote(datetime(2025, 1, 1, 11, 0, 30, tzinfo=paris_winter)) == "2025-01-01T10:00:30Z"


def test_quote_refuses_naive_datetimes_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="naive"):
        quote(datetime(2025, 1, 1, 10, 0))  # noqa: DTZ001 - the naive value is the point
    with pytest.raises(ValueError):
        quote(float("nan"))
    with pytest.raises(TypeError):
        quote(["a"])  # type: ignore[arg-type]


def test_guid_normalises_valid_ids() -> None:
    assert guid("3F2504E0-4F89-11D3-9A0C-0305E82C3301") == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert guid("{3f2504e0-4f89-11d3-9a0c-0305e82c3301}") == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert guid(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    "bad",
    [
        "1) or (1",
        "",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301) or (1",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301\n",
        "3f2504e04f8911d39a0c0305e82c3301",
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "3f2504e0-4f89-11d3-9a0c-0305e82c330g",
    ],
)
def test_guid_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ValueError):
        guid(bad)


def test_comparisons_quote_their_values() -> None:
    assert eq("lastname", "O'Neil") == "lastname eq 'O''Neil'"
    assert ne("statecode", 1) == "statecode ne 1"
    assert gt("createdon", datetime(2025, 1, 1, tzinfo=UTC)) == "createdon gt 2025-01-01T00:00:00Z"
    assert ge("revenue", Decimal("10.5")) == "revenue ge 10.5"
    assert lt("numberofemployees", 10) == "numberofemployees lt 10"
    assert le("donotemail", False) == "donotemail le false"
    assert eq("_parentcustomerid_value", uuid.UUID(int=5)) == (
        "_parentcustomerid_value eq 00000000-0000-0000-0000-000000000005"
    )
    assert eq("primarycontactid/fullname", "X") == "primarycontactid/fullname eq 'X'"
    assert ne("emailaddress1", None) == "emailaddress1 ne null"
    assert is_null("telephone1") == "telephone1 eq null"


def test_string_functions_quote_their_argument() -> None:
    assert contains("fullname", "x' or 1 eq 1 or 'a") == "contains(fullname,'x'' or 1 eq 1 or ''a')"
    assert startswith("lastname", "O'") == "startswith(lastname,'O''')"
    assert endswith("emailaddress1", "@x.com") == "endswith(emailaddress1,'@x.com')"


@pytest.mark.parametrize(
    "bad", ["lastname eq 'a' or name", "1abc", "name)", "", "a b", "a'b", "name\n"]
)
def test_column_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="column"):
        eq(bad, "x")
    with pytest.raises(ValueError, match="column"):
        contains(bad, "x")


def test_combinators_parenthesise_every_operand() -> None:
    either = or_(eq("lastname", "A"), eq("lastname", "B"))
    assert either == "(lastname eq 'A') or (lastname eq 'B')"
    assert and_(either, ne("statecode", 1)) == (
        "((lastname eq 'A') or (lastname eq 'B')) and (statecode ne 1)"
    )
    assert not_(contains("fullname", "bot")) == "not (contains(fullname,'bot'))"
    assert and_(eq("a", 1)) == "a eq 1"
    with pytest.raises(ValueError):
        and_()


def test_new_record_id_is_read_from_odata_entityid_or_location_in_any_case() -> None:
    url = (
        "https://org.crm.dynamics.com/api/data/v9.2/contacts(6D0A1A52-2C3F-4F5E-9A3B-0C1D2E3F4A5B)"
    )
    expected = "6d0a1a52-2c3f-4f5e-9a3b-0c1d2e3f4a5b"

    assert record_id_from_headers({"odata-entityid": url}) == expected
    assert record_id_from_headers({"Location": url, "OData-EntityId": "not a record"}) == expected
    assert record_id_from_headers({"OData-Version": "4.0"}) is None
