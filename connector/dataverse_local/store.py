"""SQLite storage for the embedded Dataverse: tables from the `Schema`, typed values, ETags.

The layout follows the storage conventions in `docs/embedded-dataverse.md`: one table per
Dataverse table named by its logical name, one column per attribute, lookups as
`<name>` (GUID) plus `<name>__table` (the target's logical name), N:N relationships as
intersect tables, `_meta` for the signing secret and the global version counter.

Writes go through one connection guarded by one re-entrant lock: they are serialised and
a transaction nests as SQLite savepoints, so a `$batch` changeset is one transaction around
the requests it holds (a single write statement inside one needs no savepoint: SQLite
undoes a failing statement by itself). Reads take a connection of their own from a small
pool (WAL lets them run while the writer writes, each seeing the last commit), so neither
a write nor a slow query holds up every other request; a read inside a transaction uses the writer's
connection, so it sees that transaction's own changes.

Errors:

    ApiError            a Dataverse-shaped failure: status, code, message
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import math
import queue
import re
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from connector.private_files import make_private_file
from connector.solution.model import Column, ColumnType, ManyToMany, Schema, Table

log = logging.getLogger(__name__)

__all__ = [
    "BUSY_TIMEOUT_SECS",
    "DUPLICATE_KEY_CODE",
    "LOOKUP_TYPES",
    "SEARCHED_COLUMNS",
    "SERVER_SET_COLUMNS",
    "ApiError",
    "Store",
    "coerce_value",
    "index_columns",
    "format_datetime",
    "intersect_columns",
    "intersect_sides",
    "new_guid",
    "normalise_guid",
    "open_store",
    "quote",
    "utc_now",
]

BUSY_TIMEOUT_SECS = 30.0
STATEMENT_CACHE_SIZE = 1024
# DuplicateRecordEntityKey: a write whose alternate key values another record holds
# (Dataverse "Web service error codes").
DUPLICATE_KEY_CODE = "0x80060892"
LOOKUP_TYPES = frozenset({ColumnType.LOOKUP, ColumnType.CUSTOMER, ColumnType.OWNER})
# Columns the server maintains; a client may send them but they are ignored, as
# Dataverse ignores createdon & co. (overriddencreatedon is the supported way).
SERVER_SET_COLUMNS = frozenset(
    {
        "createdon",
        "modifiedon",
        "createdby",
        "modifiedby",
        "createdonbehalfby",
        "modifiedonbehalfby",
        "owningbusinessunit",
        "owninguser",
        "owningteam",
        "versionnumber",
        "fullname",
    }
)
# Columns the product's own queries and record identification filter on.
SEARCHED_COLUMNS = frozenset({"emailaddress1", "fullname", "mobilephone"})
_GUID_RE = re.compile(
    r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$"
)
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_EDM = {
    ColumnType.STRING: "Edm.String",
    ColumnType.MEMO: "Edm.String",
    ColumnType.INTEGER: "Edm.Int32",
    ColumnType.BIGINT: "Edm.Int64",
    ColumnType.DECIMAL: "Edm.Decimal",
    ColumnType.DOUBLE: "Edm.Double",
    ColumnType.MONEY: "Edm.Decimal",
    ColumnType.BOOLEAN: "Edm.Boolean",
    ColumnType.DATETIME: "Edm.DateTimeOffset",
    ColumnType.PICKLIST: "Edm.Int32",
    ColumnType.STATE: "Edm.Int32",
    ColumnType.STATUS: "Edm.Int32",
    ColumnType.UNIQUEIDENTIFIER: "Edm.Guid",
    ColumnType.IMAGE: "Edm.Binary",
}


class ApiError(Exception):
    """A failure answered with Dataverse's error shape `{"error":{"code","message"}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


def quote(name: str) -> str:
    """`name` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def new_guid() -> str:
    """A fresh GUID in the stored form (lower case, hyphenated)."""
    return str(uuid.uuid4())


def normalise_guid(text: object) -> str | None:
    """`text` as a stored GUID, or None when it is not a GUID (braces are allowed)."""
    if not isinstance(text, str):
        return None
    match = _GUID_RE.match(text.strip())
    return match.group(1).lower() if match else None


def utc_now() -> str:
    """Now, in the stored datetime form."""
    return format_datetime(datetime.now(UTC))


def format_datetime(moment: datetime) -> str:
    """A timezone-aware datetime as `YYYY-MM-DDTHH:MM:SSZ` in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def intersect_columns(relation: ManyToMany, schema: Schema) -> tuple[str, str]:
    """The two SQL columns of an N:N intersect table: the two tables' primary ids."""
    first = schema.tables[relation.entity1].primary_id
    second = schema.tables[relation.entity2].primary_id
    if first == second:
        return first + "one", second + "two"
    return first, second


def intersect_sides(
    relation: ManyToMany, schema: Schema, *, table: Table, navigation: str
) -> tuple[str, str]:
    """(this side's column, the other side's column) of an N:N intersect table, seen from
    `table` through its navigation property `navigation` (which tells the two sides of a
    self-referential relationship apart)."""
    first, second = intersect_columns(relation, schema)
    if relation.entity1 == table.logical_name and navigation == relation.entity1_navigation:
        return first, second
    return second, first


def _sql_type(column: Column) -> str:
    if column.type in (ColumnType.STRING, ColumnType.MEMO):
        return "TEXT COLLATE NOCASE"
    if column.type in (
        ColumnType.BOOLEAN,
        ColumnType.INTEGER,
        ColumnType.BIGINT,
        ColumnType.PICKLIST,
        ColumnType.STATE,
        ColumnType.STATUS,
    ):
        return "INTEGER"
    if column.type in (ColumnType.DECIMAL, ColumnType.DOUBLE, ColumnType.MONEY):
        return "REAL"
    return "TEXT"


def _refuse_read_only(table: Table) -> None:
    """A write reaching activitypointer by another road (deep insert, a link) is a 400."""
    if table.read_only:
        raise ApiError(
            400,
            "0x80048d19",
            f"{table.schema_name} records cannot be written: each one follows an activity.",
        )


def _payload_error(table: Table, detail: str) -> ApiError:
    return ApiError(
        400,
        "0x80048d19",
        f"Error identified in Payload provided by the user for Entity :'{table.entity_set}', "
        f"For more information on this error please follow this help link "
        f"https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : "
        f"Microsoft.OData.ODataException: {detail}",
    )


def _convert_error(table: Table, column: Column, value: object) -> ApiError:
    literal = value if isinstance(value, str) else repr(value)
    return _payload_error(
        table,
        f"Cannot convert the literal '{literal}' to the expected type "
        f"'{_EDM.get(column.type, 'Edm.String')}' (property '{column.logical_name}').",
    )


def _parse_datetime(text: str) -> datetime | None:
    cleaned = text.strip()
    try:
        if len(cleaned) == 10:
            day = date.fromisoformat(cleaned)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    # Dataverse treats an offset-less value as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def coerce_value(table: Table, column: Column, value: object) -> Any:
    """A JSON payload value for `column` as its SQL value; raises ApiError(400) if wrong.

    Strings are checked against `max_length`, numbers against their range and
    `min_value`/`max_value`, picklists against their options; datetimes become UTC `Z`.
    """
    if value is None:
        return None
    kind = column.type
    if kind in (ColumnType.STRING, ColumnType.MEMO):
        if not isinstance(value, str):
            raise _convert_error(table, column, value)
        if column.max_length is not None and len(value) > column.max_length:
            raise ApiError(
                400,
                "0x80044331",
                f"A validation error occurred. The length of the '{column.logical_name}' "
                f"attribute of the '{table.logical_name}' entity exceeded the maximum allowed "
                f"length of '{column.max_length}'.",
            )
        return value
    if kind == ColumnType.BOOLEAN:
        if not isinstance(value, bool):
            raise _convert_error(table, column, value)
        return 1 if value else 0
    if kind in (
        ColumnType.INTEGER,
        ColumnType.BIGINT,
        ColumnType.PICKLIST,
        ColumnType.STATE,
        ColumnType.STATUS,
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _convert_error(table, column, value)
        low, high = _INT64 if kind == ColumnType.BIGINT else _INT32
        if not low <= value <= high:
            raise _convert_error(table, column, value)
        if kind in (ColumnType.PICKLIST, ColumnType.STATE, ColumnType.STATUS):
            if column.options and value not in column.options:
                accepted = ",".join(str(option) for option in sorted(column.options))
                raise ApiError(
                    400,
                    "0x8004431a",
                    f"A validation error occurred. The value {value} of "
                    f"'{column.logical_name}' on record of type '{table.logical_name}' is "
                    f"outside the valid range. Accepted Values: {accepted}",
                )
            return value
        _check_range(table, column, float(value))
        return value
    if kind in (ColumnType.DECIMAL, ColumnType.DOUBLE, ColumnType.MONEY):
        if isinstance(value, bool):
            raise _convert_error(table, column, value)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _convert_error(table, column, value) from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _convert_error(table, column, value)
        _check_range(table, column, float(value))
        return float(value)
    if kind == ColumnType.DATETIME:
        moment = _parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise _convert_error(table, column, value)
        return format_datetime(moment)
    if kind == ColumnType.UNIQUEIDENTIFIER:
        guid = normalise_guid(value)
        if guid is None:
            raise _convert_error(table, column, value)
        return guid
    if kind == ColumnType.IMAGE:
        if not isinstance(value, str):
            raise _convert_error(table, column, value)
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _convert_error(table, column, value[:40]) from None
        return value
    raise _convert_error(table, column, value)


def _check_range(table: Table, column: Column, number: float) -> None:
    too_low = column.min_value is not None and number < column.min_value
    too_high = column.max_value is not None and number > column.max_value
    if too_low or too_high:
        raise ApiError(
            400,
            "0x80044331",
            f"A validation error occurred. The value of '{column.logical_name}' on record of "
            f"type '{table.logical_name}' is outside the valid range "
            f"({column.min_value} to {column.max_value}).",
        )


def _connect(db_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        str(db_path),
        timeout=BUSY_TIMEOUT_SECS,
        isolation_level=None,  # autocommit; transactions are explicit savepoints
        check_same_thread=False,  # the writer is guarded by Store.lock, a reader by the pool
        # Prepared statements kept per connection (sqlite3's default is 128): the service's
        # own queries, filters kept by shape and per-column-set writes over 27 tables
        # outnumber that, and a statement pushed out is parsed and planned again.
        cached_statements=STATEMENT_CACHE_SIZE,
    )
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECS * 1000)}")
    return connection


# A table's creates and updates write the same few sets of columns, so the statement text
# is built once per set (a `$batch` of 100 creates quoted every column name 100 times).
@functools.lru_cache(maxsize=1024)
def _insert_sql(table: str, names: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO {quote(table)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )


@functools.lru_cache(maxsize=1024)
def _update_sql(table: str, primary_id: str, names: tuple[str, ...]) -> str:
    return (
        f"UPDATE {quote(table)} SET {', '.join(quote(n) + ' = ?' for n in names)} "
        f"WHERE {quote(primary_id)} = ?"
    )


class _Reading:
    """`Store._reading()`: a plain context manager, since every request reads two or three
    times and a generator-based one cost a microsecond each (bench/dataverse_vs_sqlite.py)."""

    __slots__ = ("_connection", "_store", "_writer")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writer = store._writer_thread == threading.get_ident()
        self._connection: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        if self._writer:
            store.lock.acquire()
            return store.connection
        self._connection = store._borrow_reader()
        return self._connection

    def __exit__(self, *exc_info: object) -> None:
        if self._writer:
            self._store.lock.release()
        elif self._connection is not None:
            self._store._idle_readers.put(self._connection)


@dataclass
class Store:
    """The embedded Dataverse's database: one SQLite file, one writer connection behind one
    lock, and a pool of reader connections."""

    path: Path
    schema: Schema
    connection: sqlite3.Connection  # the writer
    lock: threading.RLock = field(default_factory=threading.RLock)
    _depth: int = 0
    _writer_thread: int | None = None  # the thread inside transaction(), if any
    _idle_readers: queue.SimpleQueue[sqlite3.Connection] = field(default_factory=queue.SimpleQueue)
    _readers: list[sqlite3.Connection] = field(default_factory=list)
    _readers_lock: threading.Lock = field(default_factory=threading.Lock)

    def _reading(self) -> _Reading:
        """A connection to read with: the writer's inside this thread's transaction, else
        an idle reader (one is opened when none is idle; requests run on a bounded pool of
        server threads, so the pool stays that size)."""
        return _Reading(self)

    def _borrow_reader(self) -> sqlite3.Connection:
        try:
            return self._idle_readers.get_nowait()
        except queue.Empty:
            reader = _connect(self.path)
            reader.execute("PRAGMA query_only=1")
            with self._readers_lock:
                self._readers.append(reader)
            return reader

    @functools.cached_property
    def signing_secret(self) -> bytes:
        """The secret that signs bearer tokens; generated once, kept in `_meta` (and never
        changed, so it is read once: every request checks its token against it)."""
        value = self.get_meta("signing_secret")
        if value is None:
            raise RuntimeError("store was not initialised")
        return value.encode()

    @property
    def organization_id(self) -> str:
        """The organisation's GUID, generated once (WhoAmI answers it)."""
        value = self.get_meta("organization_id")
        if value is None:
            raise RuntimeError("store was not initialised")
        return value

    def get_meta(self, key: str) -> str | None:
        """A `_meta` value, or None."""
        with self._reading() as db:
            row = db.execute("SELECT value FROM _meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a `_meta` value."""
        with self.transaction():
            self.connection.execute(
                "INSERT INTO _meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock and a transaction; commit on success, roll back on error.

        Nested calls nest savepoints, so the innermost failure undoes only its own work
        unless the exception also leaves the outer block. The outermost block needs no
        savepoint of its own: its ROLLBACK undoes everything.
        """
        with self.lock:
            self._depth += 1
            self._writer_thread = threading.get_ident()
            outermost = self._depth == 1
            name = f"sp{self._depth}"
            try:
                # IMMEDIATE takes the write lock now, waiting out another process's
                # writer (busy timeout). A deferred transaction that read first and
                # then writes after another process committed gets SQLITE_BUSY at
                # once, with no wait: "database is locked" in the CLI while the
                # service runs.
                self.connection.execute("BEGIN IMMEDIATE" if outermost else f"SAVEPOINT {name}")
                try:
                    yield self.connection
                except BaseException:
                    if outermost:
                        self.connection.execute("ROLLBACK")
                    else:
                        self.connection.execute(f"ROLLBACK TO {name}")
                        self.connection.execute(f"RELEASE {name}")
                    raise
                else:
                    self.connection.execute("COMMIT" if outermost else f"RELEASE {name}")
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._writer_thread = None

    def _write_one(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """Run one write statement (and its RETURNING rows) atomically.

        SQLite undoes a failing statement by itself and leaves the enclosing transaction
        as it was (statement journal), so inside a transaction a single statement needs no
        savepoint of its own: three statements instead of one in every create, update and
        version bump of a `$batch` changeset. Alone, it is a transaction of its own.
        """
        with self.lock:
            if self._depth:
                return self.connection.execute(sql, params).fetchall()
        with self.transaction() as db:
            return db.execute(sql, params).fetchall()

    def next_version(self) -> int:
        """The next value of the global row-version counter (the ETag source)."""
        rows = self._write_one(
            "UPDATE _meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version' "
            "RETURNING value",
            (),
        )
        return int(rows[0][0])

    def query(
        self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] | list[Any] = ()
    ) -> list[sqlite3.Row]:
        """Rows of a read-only statement."""
        with self._reading() as db:
            return list(db.execute(sql, params).fetchall())

    def query_dicts(
        self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] | list[Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of a read-only statement as dicts (column name -> value).

        The names are read once per statement: `dict(sqlite3.Row)` looks each one up by
        name again, a third of reading a record's row (bench/dataverse_vs_sqlite.py).
        """
        with self._reading() as db:
            cursor = db.execute(sql, params)
            rows = cursor.fetchall()
            names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetch(self, table: Table, record_id: str) -> dict[str, Any] | None:
        """The stored row of `record_id` in `table`, or None."""
        rows = self.query_dicts(
            f"SELECT * FROM {quote(table.logical_name)} WHERE {quote(table.primary_id)} = ?",
            (record_id,),
        )
        return rows[0] if rows else None

    def insert(self, table: Table, values: Mapping[str, Any]) -> None:
        """Insert a row whose SQL values are already validated."""
        _refuse_read_only(table)
        names = tuple(values)
        with self._unique_keys(table):
            self._write_one(_insert_sql(table.logical_name, names), [values[n] for n in names])

    def update(self, table: Table, record_id: str, values: Mapping[str, Any]) -> None:
        """Update a row with already validated SQL values."""
        _refuse_read_only(table)
        if not values:
            return
        names = tuple(values)
        sql = _update_sql(table.logical_name, table.primary_id, names)
        with self._unique_keys(table):
            self._write_one(sql, [*(values[n] for n in names), record_id])

    @contextmanager
    def _unique_keys(self, table: Table) -> Iterator[None]:
        """Answer a write that breaks one of the table's alternate keys as Dataverse does.

        The keys are unique indexes over `TEXT COLLATE NOCASE` columns, so `QA_Unique`
        clashes with `qa_unique`, as on the real platform's case-insensitive collation.
        """
        try:
            yield
        except sqlite3.IntegrityError as error:
            key = _broken_key(table, str(error))
            if key is None:
                raise
            name, columns = key
            raise ApiError(
                412,
                DUPLICATE_KEY_CODE,
                f"A record that has the attribute values {', '.join(columns)} already exists. "
                f"The entity key {name} requires that this set of attributes contains unique "
                "values. Select unique values and try again.",
            ) from error

    def delete(self, table: Table, record_id: str) -> bool:
        """Delete a row and its N:N pairs; True if it existed."""
        _refuse_read_only(table)
        with self.transaction() as db:
            cursor = db.execute(
                f"DELETE FROM {quote(table.logical_name)} WHERE {quote(table.primary_id)} = ?",
                (record_id,),
            )
            for relation, first, second in self._intersect_tables():
                if table.logical_name not in (relation.entity1, relation.entity2):
                    continue
                db.execute(
                    f"DELETE FROM {quote(relation.intersect_entity)} "
                    f"WHERE {quote(first)} = ? OR {quote(second)} = ?",
                    (record_id, record_id),
                )
            return cursor.rowcount > 0

    def _intersect_tables(self) -> Iterator[tuple[ManyToMany, str, str]]:
        """Each N:N relationship whose two tables are in the schema, with its two columns."""
        for relation in self.schema.many_to_many:
            if relation.entity1 in self.schema.tables and relation.entity2 in self.schema.tables:
                first, second = intersect_columns(relation, self.schema)
                yield relation, first, second

    def close(self) -> None:
        """Close the writer and every reader."""
        with self.lock:
            self.connection.close()
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    def create_schema(self) -> None:
        """Create missing tables, columns and intersect tables (idempotent).

        A newer solution adds columns with `ALTER TABLE ... ADD COLUMN`; nothing is ever
        dropped, so data written under an older solution survives.
        """
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)")
            for table in self.schema.tables.values():
                if not table.read_only:
                    self._create_table(db, table)
            for table in self.schema.tables.values():
                if table.read_only:
                    self._create_pointer_view(db, table)
            for relation, first, second in self._intersect_tables():
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {quote(relation.intersect_entity)} "
                    f"({quote(first)} TEXT NOT NULL, {quote(second)} TEXT NOT NULL, "
                    f"PRIMARY KEY ({quote(first)}, {quote(second)}))"
                )
                db.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(relation.intersect_entity + '__' + second)}"
                    f" ON {quote(relation.intersect_entity)} ({quote(second)})"
                )
            db.execute(
                "INSERT OR IGNORE INTO _meta (key, value) VALUES ('signing_secret', ?)",
                (secrets.token_urlsafe(48),),
            )
            db.execute(
                "INSERT OR IGNORE INTO _meta (key, value) VALUES ('organization_id', ?)",
                (new_guid(),),
            )
            db.execute("INSERT OR IGNORE INTO _meta (key, value) VALUES ('version', '1000')")

    def _create_pointer_view(self, db: sqlite3.Connection, pointer: Table) -> None:
        """`activitypointer` as a view over every activity table, rebuilt on each start so
        that a newer solution's activities appear (each row keeps its own activityid)."""
        columns = [pointer.primary_id, *self._sql_columns(pointer)]
        selects: list[str] = []
        for table in self.schema.tables.values():
            if not table.is_activity or table.read_only:
                continue
            present = {table.primary_id, *self._sql_columns(table)}
            parts = [
                f"{quote(col)} AS {quote(col)}" if col in present else f"NULL AS {quote(col)}"
                for col in columns
                if col != "activitytypecode"
            ]
            parts.append(f"'{table.logical_name}' AS \"activitytypecode\"")
            selects.append(f"SELECT {', '.join(parts)} FROM {quote(table.logical_name)}")
        if not selects:
            selects.append(
                "SELECT " + ", ".join(f"NULL AS {quote(c)}" for c in columns) + " WHERE 0"
            )
        name = quote(pointer.logical_name)
        db.execute(f"DROP VIEW IF EXISTS {name}")
        db.execute(f"CREATE VIEW {name} AS {' UNION ALL '.join(selects)}")

    @staticmethod
    def _sql_columns(table: Table) -> dict[str, str]:
        """The SQL columns of `table` besides its primary key, with their types."""
        wanted: dict[str, str] = {}
        for column in table.columns.values():
            if column.logical_name == table.primary_id:
                continue
            wanted[column.logical_name] = _sql_type(column)
            if column.type in LOOKUP_TYPES:
                wanted[column.logical_name + "__table"] = "TEXT"
        wanted.setdefault("versionnumber", "INTEGER")
        return wanted

    def _create_table(self, db: sqlite3.Connection, table: Table) -> None:
        wanted = self._sql_columns(table)
        name = quote(table.logical_name)
        definitions = [f"{quote(table.primary_id)} TEXT PRIMARY KEY NOT NULL"]
        definitions += [f"{quote(col)} {sql_type}" for col, sql_type in wanted.items()]
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(definitions)})")
        present = {str(row[1]) for row in db.execute(f"PRAGMA table_info({name})")}
        for col, sql_type in wanted.items():
            if col not in present:
                db.execute(f"ALTER TABLE {name} ADD COLUMN {quote(col)} {sql_type}")
        for columns in index_columns(table):
            index = quote("__".join((table.logical_name, *columns)))
            db.execute(
                f"CREATE INDEX IF NOT EXISTS {index} ON {name} "
                f"({', '.join(quote(column) for column in columns)})"
            )
        for key_name, key_columns in table.alternate_keys.items():
            index = quote(f"{table.logical_name}__key__{key_name}")
            key_sql = ", ".join(quote(c) for c in key_columns)
            try:
                db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {name} ({key_sql})")
            except sqlite3.IntegrityError:
                # Rows written before the key existed clash: the real platform marks such a
                # key's index as failed and keeps the data; so does this store.
                log.warning("alternate key %s of %s is not unique", key_name, table.logical_name)


def _broken_key(table: Table, message: str) -> tuple[str, tuple[str, ...]] | None:
    """The alternate key a SQLite "UNIQUE constraint failed: t.a, t.b" message names."""
    prefix = "UNIQUE constraint failed: "
    if not message.startswith(prefix):
        return None
    columns = {part.strip().rsplit(".", 1)[-1] for part in message[len(prefix) :].split(",")}
    for name, key_columns in table.alternate_keys.items():
        if set(key_columns) == columns:
            return name, key_columns
    return None


def index_columns(table: Table) -> list[tuple[str, ...]]:
    """The SQL indexes of `table`, each as its columns (docs/embedded-dataverse.md, "Indexes").

    The real service indexes the primary name, alternate keys and lookups (alternate keys
    get their own unique indexes in `_create_table`); we add
    `createdon` (lists sort by it) and the columns record identification and the product
    filter on (SEARCHED_COLUMNS). `statecode` is never an index's first column: nearly
    every row is active, and without statistics SQLite prefers such an index over a
    lookup's for `statecode eq 0 and _x_value eq ...`, scanning every active row. It trails
    instead, so the same filter is answered from one index entry.
    """
    state = ("statecode",) if "statecode" in table.columns else ()
    wanted: list[tuple[str, ...]] = []
    if table.primary_name in table.columns and table.primary_name != table.primary_id:
        wanted.append((table.primary_name, *state))
    for column in table.columns.values():
        if column.type in LOOKUP_TYPES or column.logical_name in SEARCHED_COLUMNS:
            wanted.append((column.logical_name, *state))
    if "createdon" in table.columns:
        wanted.append(("createdon",))
    return list(dict.fromkeys(wanted))


def open_store(db_path: Path, schema: Schema) -> Store:
    """Open (creating if needed) the SQLite database at `db_path` for `schema`.

    Safe to call from several processes at once (e.g. the server and
    `crmchat dataverse token`): tables are created idempotently under SQLite's lock.
    """
    make_private_file(db_path)
    connection = _connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    store = Store(path=db_path, schema=schema, connection=connection)
    store.create_schema()
    return store
