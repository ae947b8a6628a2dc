"""The embedded Dataverse's query language: `$filter` run against real SQLite rows, and the
parsing of `$select`, `$orderby`, `$top`, `$expand`, `Prefer` and whole query strings."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

import pytest

from connector.dataverse_local.filters import MAX_FILTER_CHARS, compile_filter
from connector.dataverse_local.query import (
    Preferences,
    QueryError,
    parse_expand,
    parse_orderby,
    parse_prefer,
    parse_query,
    parse_select,
    parse_top,
    wants_annotation,
)
from connector.solution.model import (
    Column,
    ColumnType,
    ManyToMany,
    OneToMany,
    Schema,
    Table,
)

T = ColumnType


def _table(name: str, primary_name: str, columns: dict[str, ColumnType]) -> Table:
    cols = {n: Column(n, t) for n, t in columns.items()}
    cols[name + "id"] = Column(name + "id", T.UNIQUEIDENTIFIER)
    return Table(name, name, name + "s", name + "id", primary_name, cols)


CONTACT = _table(
    "contact",
    "fullname",
    {
        "fullname": T.STRING,
        "lastname": T.STRING,
        "description": T.MEMO,
        "numberofchildren": T.INTEGER,
        "creditlimit": T.MONEY,
        "createdon": T.DATETIME,
        "donotemail": T.BOOLEAN,
        "parentcustomerid": T.CUSTOMER,
        "statecode": T.STATE,
    },
)
ACCOUNT = _table("account", "name", {"name": T.STRING, "primarycontactid": T.LOOKUP})
TOPIC = _table("crmchat_topic", "crmchat_name", {"crmchat_name": T.STRING})

SCHEMA = Schema(
    tables={"contact": CONTACT, "account": ACCOUNT, "crmchat_topic": TOPIC},
    one_to_many=(
        OneToMany(
            "contact_customer_accounts",
            referenced_entity="account",
            referencing_entity="contact",
            referencing_attribute="parentcustomerid",
            referencing_navigation="parentcustomerid_account",
            referenced_navigation="contact_customer_accounts",
        ),
        OneToMany(
            "account_primary_contact",
            referenced_entity="contact",
            referencing_entity="account",
            referencing_attribute="primarycontactid",
            referencing_navigation="primarycontactid",
            referenced_navigation="account_primary_contact",
        ),
    ),
    many_to_many=(
        ManyToMany(
            "crmchat_contact_topic",
            entity1="contact",
            entity2="crmchat_topic",
            intersect_entity="crmchat_contact_topic",
            entity1_navigation="crmchat_contact_topic",
            entity2_navigation="crmchat_contact_topic",
        ),
    ),
)

CONTOSO = "aaaaaaaa-0000-0000-0000-000000000001"
FABRIKAM = "aaaaaaaa-0000-0000-0000-000000000002"
EMPTY = "aaaaaaaa-0000-0000-0000-000000000003"
ANN = "cccccccc-0000-0000-0000-000000000001"
BOB = "cccccccc-0000-0000-0000-000000000002"
CID = "cccccccc-0000-0000-0000-000000000003"
DANA = "cccccccc-0000-0000-0000-000000000004"
BILLING = "dddddddd-0000-0000-0000-000000000001"
SALES = "dddddddd-0000-0000-0000-000000000002"


def _sql_type(column: Column) -> str:
    if column.type in (T.STRING, T.MEMO):
        return "TEXT COLLATE NOCASE"
    if column.type in (T.INTEGER, T.BOOLEAN, T.STATE):
        return "INTEGER"
    if column.type == T.MONEY:
        return "REAL"
    return "TEXT"


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    for table in SCHEMA.tables.values():
        defs = [f'"{c.logical_name}" {_sql_type(c)}' for c in table.columns.values()]
        defs += [
            f'"{c.logical_name}__table" TEXT'
            for c in table.columns.values()
            if c.type in (T.LOOKUP, T.CUSTOMER)
        ]
        conn.execute(f'CREATE TABLE "{table.logical_name}" ({", ".join(defs)})')
    conn.execute(
        'CREATE TABLE "crmchat_contact_topic" ("contactid" TEXT, "crmchat_topicid" TEXT, '
        'PRIMARY KEY ("contactid", "crmchat_topicid"))'
    )
    conn.executemany(
        "INSERT INTO account (accountid, name, primarycontactid, primarycontactid__table) "
        "VALUES (?, ?, ?, 'contact')",
        [(CONTOSO, "Contoso", ANN), (FABRIKAM, "Fabrikam", BOB), (EMPTY, "Empty", None)],
    )
    conn.executemany(
        "INSERT INTO contact (contactid, fullname, lastname, description, numberofchildren, "
        "creditlimit, createdon, donotemail, parentcustomerid, parentcustomerid__table) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'account')",
        [
            (ANN, "Ann O'Neil", "O'Neil", "50% off_deal", 2, 100.5, "2025-01-01T10:00:00Z", 1,
             CONTOSO),
            (BOB, "Bob Smith", "Smith", "500 off deal", 0, 20.0, "2025-01-02T00:00:00Z", 0,
             FABRIKAM),
            (CID, "Cid", None, None, None, None, None, 0, None),
            (DANA, "dana smith", "smith", "x_y", 5, None, "2024-12-31T23:59:59Z", 1, CONTOSO),
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO crmchat_topic (crmchat_topicid, crmchat_name) VALUES (?, ?)",
        [(BILLING, "Billing"), (SALES, "Sales")],
    )
    conn.executemany(
        "INSERT INTO crmchat_contact_topic VALUES (?, ?)",
        [(ANN, BILLING), (ANN, SALES), (BOB, SALES)],
    )
    yield conn
    conn.close()


def names(db: sqlite3.Connection, text: str, table: Table = CONTACT) -> set[str]:
    """The primary names of the rows of `table` the filter `text` selects."""
    sql, params = compile_filter(text, table, SCHEMA)
    rows = db.execute(
        f'SELECT t."{table.primary_name}" FROM "{table.logical_name}" AS t WHERE {sql}', params
    ).fetchall()
    return {row[0] for row in rows}


def error_of(text: str, table: Table = CONTACT) -> QueryError:
    with pytest.raises(QueryError) as caught:
        compile_filter(text, table, SCHEMA)
    return caught.value


# -- $filter: values and operators ---------------------------------------------------------


def test_string_equality_ignores_case(db: sqlite3.Connection) -> None:
    assert names(db, "lastname eq 'SMITH'") == {"Bob Smith", "dana smith"}


def test_doubled_quote_is_one_quote(db: sqlite3.Connection) -> None:
    assert names(db, "lastname eq 'O''Neil'") == {"Ann O'Neil"}


def test_quoted_injection_is_just_a_value(db: sqlite3.Connection) -> None:
    # What a client sends when it quotes `x' or 1 eq 1 or 'a` correctly.
    sql, params = compile_filter("lastname eq 'x'' or 1 eq 1 or ''a'", CONTACT, SCHEMA)
    assert params == ["x' or 1 eq 1 or 'a"]
    assert "or" not in sql.lower()
    assert names(db, "lastname eq 'x'' or 1 eq 1 or ''a'") == set()
    assert names(db, "lastname eq 'x''); DROP TABLE contact; --'") == set()
    assert db.execute("SELECT count(*) FROM contact").fetchone()[0] == 4


@pytest.mark.parametrize(
    "text",
    [
        "lastname eq 'x' or 1 eq 1 or 'a",  # the value pasted in unquoted: unbalanced
        "lastname eq 'x' or 1 eq 1 or 'a'",  # balanced, but literals compared with literals
        "lastname eq 'x' or 'a'",
        'lastname eq "x" or 1 eq 1',
        "lastname eq 'x'; DROP TABLE contact",
    ],
)
def test_unquoted_injection_is_refused(text: str) -> None:
    error_of(text)


def test_contains_treats_percent_and_underscore_literally(db: sqlite3.Connection) -> None:
    assert names(db, "contains(description,'50%')") == {"Ann O'Neil"}
    assert names(db, "contains(description,'_')") == {"Ann O'Neil", "dana smith"}
    assert names(db, "contains(description, '\\')") == set()
    assert names(db, "startswith(fullname,'BOB')") == {"Bob Smith"}
    assert names(db, "endswith(lastname,'NEIL')") == {"Ann O'Neil"}


def test_and_binds_tighter_than_or(db: sqlite3.Connection) -> None:
    assert names(db, "lastname eq 'Smith' or lastname eq 'O''Neil' and donotemail eq false") == {
        "Bob Smith",
        "dana smith",
    }
    assert names(db, "(lastname eq 'Smith' or lastname eq 'O''Neil') and donotemail eq false") == {
        "Bob Smith"
    }


def test_not(db: sqlite3.Connection) -> None:
    assert names(db, "not startswith(fullname,'B')") == {"Ann O'Neil", "Cid", "dana smith"}
    assert names(db, "not (numberofchildren gt 1) and lastname ne null") == {"Bob Smith"}
    assert names(db, "not not donotemail") == {"Ann O'Neil", "dana smith"}


def test_null_comparisons(db: sqlite3.Connection) -> None:
    assert names(db, "lastname eq null") == {"Cid"}
    assert names(db, "null eq lastname") == {"Cid"}
    assert names(db, "_parentcustomerid_value ne null") == {"Ann O'Neil", "Bob Smith", "dana smith"}


def test_numbers_and_booleans(db: sqlite3.Connection) -> None:
    assert names(db, "numberofchildren ge 2") == {"Ann O'Neil", "dana smith"}
    assert names(db, "creditlimit gt 100") == {"Ann O'Neil"}
    assert names(db, "creditlimit le 20.0") == {"Bob Smith"}
    assert names(db, "numberofchildren lt 1.5") == {"Bob Smith"}
    assert names(db, "-1 lt numberofchildren and numberofchildren lt 1") == {"Bob Smith"}
    assert names(db, "donotemail") == {"Ann O'Neil", "dana smith"}
    assert names(db, "donotemail eq false") == {"Bob Smith", "Cid"}


def test_lookup_value_with_upper_case_guid(db: sqlite3.Connection) -> None:
    assert names(db, f"_parentcustomerid_value eq {CONTOSO.upper()}") == {
        "Ann O'Neil",
        "dana smith",
    }
    assert names(db, f"contactid eq {BOB}") == {"Bob Smith"}


def test_datetime_comparisons_are_in_utc(db: sqlite3.Connection) -> None:
    assert names(db, "createdon gt 2025-01-01T09:00:00Z") == {"Ann O'Neil", "Bob Smith"}
    assert names(db, "createdon eq 2025-01-01T11:00:00+01:00") == {"Ann O'Neil"}
    assert names(db, "createdon eq 2025-01-01T05:00:00-05:00") == {"Ann O'Neil"}
    assert names(db, "createdon ge 2025-01-01T09:59:59.5Z") == {"Ann O'Neil", "Bob Smith"}
    assert names(db, "createdon le 2025-01-01T10:00:00.5Z") == {"Ann O'Neil", "dana smith"}
    assert names(db, "createdon eq 2025-01-01T10:00:00.5Z") == set()


def test_date_against_datetime_means_the_whole_day(db: sqlite3.Connection) -> None:
    assert names(db, "createdon eq 2025-01-01") == {"Ann O'Neil"}
    assert names(db, "createdon lt 2025-01-01") == {"dana smith"}
    assert names(db, "createdon le 2025-01-01") == {"Ann O'Neil", "dana smith"}
    assert names(db, "createdon gt 2025-01-01") == {"Bob Smith"}
    assert names(db, "createdon ne 2025-01-01") == {"Bob Smith", "dana smith"}


def test_tolower_changes_nothing_since_comparisons_ignore_case(db: sqlite3.Connection) -> None:
    assert names(db, "tolower(lastname) eq 'smith'") == {"Bob Smith", "dana smith"}
    assert names(db, "contains(toupper(fullname), tolower('SMITH'))") == {
        "Bob Smith",
        "dana smith",
    }


def test_column_compared_with_column(db: sqlite3.Connection) -> None:
    assert names(db, "fullname eq lastname") == set()
    assert names(db, "numberofchildren gt creditlimit") == set()
    assert names(db, "creditlimit gt numberofchildren") == {"Ann O'Neil", "Bob Smith"}


# -- $filter: navigation -------------------------------------------------------------------


def test_single_valued_navigation_path(db: sqlite3.Connection) -> None:
    assert names(db, "parentcustomerid_account/name eq 'contoso'") == {"Ann O'Neil", "dana smith"}
    assert names(db, "primarycontactid/fullname eq 'Bob Smith'", ACCOUNT) == {"Fabrikam"}
    assert names(db, "contains(primarycontactid/lastname,'neil')", ACCOUNT) == {"Contoso"}
    assert names(db, "primarycontactid/parentcustomerid_account/name eq 'Fabrikam'", ACCOUNT) == {
        "Fabrikam"
    }
    assert names(db, "primarycontactid eq null", ACCOUNT) == {"Empty"}
    assert names(db, "primarycontactid ne null", ACCOUNT) == {"Contoso", "Fabrikam"}
    assert names(db, "parentcustomerid_account eq null") == {"Cid"}


def test_polymorphic_navigation_is_null_when_the_lookup_is_another_table(
    db: sqlite3.Connection,
) -> None:
    db.execute(
        "INSERT INTO contact (contactid, fullname, parentcustomerid, parentcustomerid__table) "
        "VALUES ('cccccccc-0000-0000-0000-000000000005', 'Eve', ?, 'contact')",
        (ANN,),
    )
    try:
        assert names(db, "parentcustomerid_account eq null") == {"Cid", "Eve"}
        assert "Eve" not in names(db, "parentcustomerid_account ne null")
        assert "Eve" in names(db, "_parentcustomerid_value ne null")
    finally:
        db.execute("DELETE FROM contact WHERE fullname = 'Eve'")


def test_any_and_all_on_one_to_many(db: sqlite3.Connection) -> None:
    assert names(db, "contact_customer_accounts/any(c: c/numberofchildren gt 3)", ACCOUNT) == {
        "Contoso"
    }
    assert names(db, "contact_customer_accounts/any()", ACCOUNT) == {"Contoso", "Fabrikam"}
    # `all` is true for an account without contacts, as in OData.
    assert names(db, "contact_customer_accounts/all(c: c/donotemail eq true)", ACCOUNT) == {
        "Contoso",
        "Empty",
    }
    assert names(db, "not contact_customer_accounts/any()", ACCOUNT) == {"Empty"}


def test_any_on_many_to_many_from_both_sides(db: sqlite3.Connection) -> None:
    assert names(db, f"crmchat_contact_topic/any(t: t/crmchat_topicid eq {BILLING})") == {
        "Ann O'Neil"
    }
    assert names(db, "crmchat_contact_topic/any(x: x/crmchat_name eq 'sales')") == {
        "Ann O'Neil",
        "Bob Smith",
    }
    assert names(db, "crmchat_contact_topic/any(c: c/lastname eq 'Smith')", TOPIC) == {"Sales"}
    assert names(db, "crmchat_contact_topic/all(x: x/crmchat_name eq 'Sales')") == {
        "Bob Smith",
        "Cid",
        "dana smith",
    }


def test_lambda_body_can_use_the_outer_row(db: sqlite3.Connection) -> None:
    text = "crmchat_contact_topic/any(x: x/crmchat_name eq 'Sales' and donotemail eq true)"
    assert names(db, text) == {"Ann O'Neil"}
    nested = (
        "contact_customer_accounts/any(c: c/crmchat_contact_topic/any(x: x/crmchat_name eq "
        "'Billing'))"
    )
    assert names(db, nested, ACCOUNT) == {"Contoso"}


# -- $filter: errors and limits ------------------------------------------------------------


def test_unknown_property_uses_dataverse_message() -> None:
    error = error_of("nosuch eq 1")
    assert (
        error.message
        == "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.contact'."
    )
    assert (error.code, error.status) == ("0x80060888", 400)
    # A lookup is only a property as `_x_value`.
    assert "'parentcustomerid'" in error_of(f"parentcustomerid eq {CONTOSO}").message
    assert "'nosuch'" in error_of("parentcustomerid_account/nosuch eq 'x'").message


def test_syntax_errors_give_the_position() -> None:
    assert error_of("lastname eq").message == "Syntax error at position 11 in 'lastname eq'."
    assert (
        error_of("lastname eq 'O'Bryan'").message
        == "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''."
    )
    assert "position 15" in error_of("lastname eq 'a')").message
    assert "position 0" in error_of("").message
    assert "character '#'" in error_of("lastname eq #").message


def test_type_mismatch_uses_dataverse_message() -> None:
    assert error_of("numberofchildren eq '2'").message == (
        "A binary operator with incompatible types was detected. Found operand types "
        "'Edm.Int32' and 'Edm.String' for operator kind 'Equal'."
    )
    error_of(f"_parentcustomerid_value eq '{CONTOSO}'")
    error_of("lastname gt 5")
    error_of("donotemail eq 1")
    error_of("contains(numberofchildren,'1')")
    error_of("createdon gt 2025-13-01T00:00:00Z")
    error_of("frobnicate(lastname)")


def test_depth_and_length_are_limited(db: sqlite3.Connection) -> None:
    assert names(db, "(" * 40 + "donotemail" + ")" * 40) == {"Ann O'Neil", "dana smith"}
    assert "nested too deeply" in error_of("(" * 60 + "donotemail" + ")" * 60).message
    assert "nested too deeply" in error_of("not " * 60 + "donotemail").message
    assert "nested too deeply" in error_of("(" * 5000).message
    assert "too long" in error_of("lastname eq '" + "x" * MAX_FILTER_CHARS + "'").message


def test_longest_allowed_or_chain_runs(db: sqlite3.Connection) -> None:
    terms = ["numberofchildren eq 5"]
    while len(" or ".join(terms)) < MAX_FILTER_CHARS - 30:
        terms.append("numberofchildren eq -1")
    assert names(db, " or ".join(terms)) == {"dana smith"}
    sql, params = compile_filter(" or ".join(terms), CONTACT, SCHEMA)
    assert len(params) == len(terms)
    # Balanced, not left-deep: the nesting grows with the logarithm of the chain.
    assert sql.startswith("(" * 9 + 't."') and not sql.startswith("(" * 10 + 't."')


def test_random_input_gives_sql_or_query_error(db: sqlite3.Connection) -> None:
    words = [
        "lastname", "numberofchildren", "createdon", "donotemail", "eq", "ne", "gt", "and",
        "or", "not", "(", ")", "'a''b'", "'", "null", "true", "3", "2.5", "2025-01-01",
        "2025-01-01T10:00:00Z", CONTOSO, "contains", ",", "/", ":", "any", "all", "x",
        "crmchat_contact_topic", "parentcustomerid_account", "name", "_parentcustomerid_value",
        "%", "$it", "tolower", "\\",
    ]  # fmt: skip
    rng = random.Random(7)
    compiled = 0
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
        try:
            sql, params = compile_filter(text, CONTACT, SCHEMA)
        except QueryError:
            continue
        db.execute(f"SELECT count(*) FROM contact AS t WHERE {sql}", params).fetchone()
        compiled += 1
    assert compiled > 10


def test_cached_results_are_not_shared() -> None:
    first_sql, first_params = compile_filter("lastname eq 'a'", CONTACT, SCHEMA)
    first_params.append("tampered")
    assert compile_filter("lastname eq 'a'", CONTACT, SCHEMA) == (first_sql, ["a"])
    sql, _ = compile_filter("lastname eq 'a'", CONTACT, SCHEMA, alias="c")
    assert sql == 'c."lastname" = ?'


# -- $select, $orderby, $top ---------------------------------------------------------------


def test_select_maps_lookup_values_to_columns() -> None:
    assert parse_select("fullname, _parentcustomerid_value,fullname", CONTACT) == [
        "fullname",
        "parentcustomerid",
    ]
    with pytest.raises(QueryError, match="'parentcustomerid' on type"):
        parse_select("parentcustomerid", CONTACT)
    with pytest.raises(QueryError, match="'_lastname_value'"):
        parse_select("_lastname_value", CONTACT)


def test_orderby_sorts_rows(db: sqlite3.Connection) -> None:
    order = parse_orderby("lastname desc, fullname", CONTACT)
    assert order == 't."lastname" DESC, t."fullname" ASC'
    rows = db.execute(f"SELECT t.fullname FROM contact AS t ORDER BY {order}").fetchall()
    assert [r[0] for r in rows] == ["Bob Smith", "dana smith", "Ann O'Neil", "Cid"]
    assert (
        parse_orderby("_parentcustomerid_value", CONTACT, alias="c") == 'c."parentcustomerid" ASC'
    )
    for bad in ("lastname sideways", "nosuch", "", "lastname asc desc"):
        with pytest.raises(QueryError):
            parse_orderby(bad, CONTACT)


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5", "", "99999999999"])
def test_top_must_be_a_positive_integer(bad: str) -> None:
    with pytest.raises(QueryError, match=r"\$top"):
        parse_top(bad)


def test_top_accepts_a_count() -> None:
    assert parse_top("3") == 3


# -- $expand -------------------------------------------------------------------------------


def test_expand_with_nested_options() -> None:
    expands = parse_expand(
        "parentcustomerid_account($select=name;$expand=primarycontactid($select=fullname)),"
        "crmchat_contact_topic($select=crmchat_name;$filter=contains(crmchat_name,'a;b),(');"
        "$orderby=crmchat_name desc;$top=3)",
        CONTACT,
        SCHEMA,
    )
    account, topics = expands
    assert (account.navigation, account.collection, account.target) == (
        "parentcustomerid_account",
        False,
        ACCOUNT,
    )
    assert account.select == ["name"]
    assert account.expand[0].navigation == "primarycontactid"
    assert account.expand[0].select == ["fullname"]
    assert topics.collection and isinstance(topics.relationship, ManyToMany)
    assert topics.filter == "contains(crmchat_name,'a;b),(')"
    assert topics.orderby == "crmchat_name desc"
    assert topics.top == 3


def test_expand_collection_of_one_to_many() -> None:
    (contacts,) = parse_expand("contact_customer_accounts", ACCOUNT, SCHEMA)
    assert contacts.collection and isinstance(contacts.relationship, OneToMany)
    assert contacts.target is CONTACT and contacts.select is None


def test_expand_errors() -> None:
    with pytest.raises(QueryError) as caught:
        parse_expand("nosuch", CONTACT, SCHEMA)
    assert caught.value.code == "0x80060888"
    assert caught.value.message == (
        "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.contact'."
    )
    bad = [
        "parentcustomerid_account($filter=name eq 'x')",  # filters only on collections
        "crmchat_contact_topic($filter=nosuch eq 1)",
        "crmchat_contact_topic($select=nosuch)",
        "crmchat_contact_topic($top=0)",
        "crmchat_contact_topic($levels=2)",
        "crmchat_contact_topic($select=crmchat_name",
        "crmchat_contact_topic($filter=crmchat_name eq 'x)",
        "parentcustomerid_account(x)y(z)",
        "parentcustomerid_account,parentcustomerid_account",
        "contact_customer_accounts($top=2;$expand=parentcustomerid_account)",
    ]
    for text in bad:
        with pytest.raises(QueryError):
            parse_expand(text, ACCOUNT if text.startswith("contact_") else CONTACT, SCHEMA)


def test_expand_allows_at_most_fifteen() -> None:
    chain = "primarycontactid($expand=parentcustomerid_account($expand=" * 7 + "primarycontactid"
    ok = chain + "))" * 7
    assert len(parse_expand(ok, ACCOUNT, SCHEMA)) == 1
    too_many = chain + "($expand=parentcustomerid_account)" + "))" * 7
    with pytest.raises(QueryError, match="15"):
        parse_expand(too_many, ACCOUNT, SCHEMA)


# -- Prefer --------------------------------------------------------------------------------


def test_prefer_with_quoted_commas() -> None:
    prefs = parse_prefer(
        [
            "return=representation",
            'odata.include-annotations="OData.Community.Display.V1.FormattedValue,'
            'Microsoft.Dynamics.CRM.lookuplogicalname",odata.maxpagesize=2',
        ]
    )
    assert prefs == Preferences(
        return_representation=True,
        max_page_size=2,
        include_annotations=(
            "OData.Community.Display.V1.FormattedValue",
            "Microsoft.Dynamics.CRM.lookuplogicalname",
        ),
        continue_on_error=False,
    )
    assert wants_annotation(prefs, "Microsoft.Dynamics.CRM.lookuplogicalname")
    assert not wants_annotation(prefs, "Microsoft.Dynamics.CRM.associatednavigationproperty")


def test_prefer_page_size_is_capped_and_defaults_are_off() -> None:
    assert parse_prefer("odata.maxpagesize=10000").max_page_size == 5000
    assert parse_prefer("odata.maxpagesize=abc").max_page_size is None
    assert parse_prefer(None) == Preferences()
    assert parse_prefer("odata.continue-on-error").continue_on_error
    assert not parse_prefer("return=minimal").return_representation


def test_annotation_wildcards() -> None:
    everything = parse_prefer('odata.include-annotations="*"')
    assert wants_annotation(everything, "OData.Community.Display.V1.FormattedValue")
    crm = parse_prefer('odata.include-annotations="Microsoft.Dynamics.CRM.*"')
    assert wants_annotation(crm, "Microsoft.Dynamics.CRM.lookuplogicalname")
    assert not wants_annotation(crm, "OData.Community.Display.V1.FormattedValue")
    most = parse_prefer('odata.include-annotations="*,-Microsoft.Dynamics.CRM.*"')
    assert not wants_annotation(most, "Microsoft.Dynamics.CRM.lookuplogicalname")
    assert wants_annotation(most, "OData.Community.Display.V1.FormattedValue")
    assert not wants_annotation(Preferences(), "OData.Community.Display.V1.FormattedValue")


# -- whole query strings -------------------------------------------------------------------


def test_parse_query_bundles_the_options(db: sqlite3.Connection) -> None:
    query = parse_query(
        {
            "$select": "fullname",
            "$filter": "donotemail eq true",
            "$orderby": "fullname desc",
            "$top": "1",
            "$count": "true",
            "$expand": "parentcustomerid_account($select=name)",
            "$skiptoken": "<cookie page='2'/>",
            "api-version": "ignored",
        },
        CONTACT,
        SCHEMA,
    )
    assert query.select == ["fullname"]
    assert query.top == 1 and query.count and query.skiptoken == "<cookie page='2'/>"
    assert query.expand[0].target is ACCOUNT
    rows = db.execute(
        f"SELECT t.fullname FROM contact AS t WHERE {query.filter_sql} "
        f"ORDER BY {query.orderby} LIMIT {query.top}",
        query.filter_params,
    ).fetchall()
    assert rows == [("dana smith",)]
    assert parse_query({}, CONTACT, SCHEMA).filter_sql is None


def test_parse_query_refuses_skip_and_unknown_options() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query({"$skip": "10"}, CONTACT, SCHEMA)
    assert caught.value.message == "The query parameter $skip is not supported"
    with pytest.raises(QueryError, match=r"\$search"):
        parse_query({"$search": "x"}, CONTACT, SCHEMA)
    with pytest.raises(QueryError, match=r"\$count"):
        parse_query({"$count": "yes"}, CONTACT, SCHEMA)


def test_self_referencing_many_to_many_uses_one_and_two_columns() -> None:
    person = _table("person", "name", {"name": T.STRING})
    friends = ManyToMany(
        "person_friends",
        entity1="person",
        entity2="person",
        intersect_entity="person_friends",
        entity1_navigation="person_friends_of",
        entity2_navigation="person_friends_by",
    )
    schema = Schema(tables={"person": person}, many_to_many=(friends,))
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE person (personid TEXT, name TEXT COLLATE NOCASE)")
    conn.execute("CREATE TABLE person_friends (personidone TEXT, personidtwo TEXT)")
    conn.executemany("INSERT INTO person VALUES (?, ?)", [("1", "Ann"), ("2", "Bob")])
    conn.execute("INSERT INTO person_friends VALUES ('1', '2')")  # Ann lists Bob

    def who(text: str) -> set[str]:
        sql, params = compile_filter(text, person, schema)
        return {r[0] for r in conn.execute(f"SELECT name FROM person AS t WHERE {sql}", params)}

    assert who("person_friends_of/any(p: p/name eq 'bob')") == {"Ann"}
    assert who("person_friends_by/any(p: p/name eq 'ann')") == {"Bob"}
    conn.close()
