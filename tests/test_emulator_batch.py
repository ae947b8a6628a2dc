"""`$batch` in the embedded Dataverse: changesets roll back for real, `$n` references
resolve, errors answer as Dataverse does.

The app is replaced by a small dispatcher over a real SQLite database whose changesets are
savepoints, so a rolled-back changeset really leaves no rows behind.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.dataverse.multipart import (
    HttpRequest,
    HttpResponse,
    Part,
    boundary_of,
    format_http_request,
    header,
    join_multipart,
    parse_http_response,
    split_multipart,
)
from connector.dataverse_local.batch import (
    BATCH_PAYLOAD_ERROR_CODE,
    continue_on_error_requested,
    run_batch,
)

BASE = "https://localhost:8443/api/data/v9.2"
_ENTITY = re.compile(r"^(accounts|contacts)\(([0-9a-f-]{36})\)(/primarycontactid/\$ref)?$")


@dataclass
class FakeDataverse:
    """Just enough of the app: create, update, get, and set a lookup by `$ref`."""

    db: sqlite3.Connection
    seen: list[HttpRequest] = field(default_factory=list)

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        path, _, _ = request.url.partition("?")
        body: dict[str, Any] = json.loads(request.body) if request.body.strip() else {}
        if request.method == "POST" and path in ("accounts", "contacts"):
            if not body.get("name"):
                return _error(400, "0x80040200", "Attribute 'name' is required.")
            new_id = str(uuid.uuid4())
            contact = _bound_id(body.get("primarycontactid@odata.bind"))
            if path == "accounts":
                self.db.execute(
                    "INSERT INTO accounts VALUES (?, ?, ?)", (new_id, body["name"], contact)
                )
            else:
                self.db.execute("INSERT INTO contacts VALUES (?, ?)", (new_id, body["name"]))
            return HttpResponse(
                204, "No Content", {"OData-EntityId": f"{BASE}/{path}({new_id})"}, b""
            )
        match = _ENTITY.match(path)
        if match is None:
            return _error(404, "0x80060888", f"Resource not found for the segment '{path}'.")
        table, record_id, ref = match.groups()
        if self.db.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)).fetchone() is None:
            return _error(404, "0x80040217", f"{table} With Id = {record_id} Does Not Exist")
        if request.method == "GET":
            row = self.db.execute(f"SELECT name FROM {table} WHERE id = ?", (record_id,)).fetchone()
            return HttpResponse(
                200, "OK", {"Content-Type": "application/json"}, _json({"name": row[0]})
            )
        if request.method == "PATCH" and not ref:
            if "name" in body and not body["name"]:
                return _error(400, "0x80040200", "Attribute 'name' is required.")
            self.db.execute(f"UPDATE {table} SET name = ? WHERE id = ?", (body["name"], record_id))
            return HttpResponse(204, "No Content", {}, b"")
        if request.method == "PUT" and ref:
            contact = _bound_id(body["@odata.id"])
            self.db.execute("UPDATE accounts SET contact = ? WHERE id = ?", (contact, record_id))
            return HttpResponse(204, "No Content", {}, b"")
        return _error(405, "0x80060888", "Method not allowed.")

    @contextmanager
    def changeset(self) -> Iterator[None]:
        self.db.execute("SAVEPOINT changeset")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO changeset")
            self.db.execute("RELEASE changeset")
            raise
        self.db.execute("RELEASE changeset")

    def names(self, table: str = "accounts") -> list[str]:
        return [row[0] for row in self.db.execute(f"SELECT name FROM {table} ORDER BY rowid")]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(
        status,
        "",
        {"Content-Type": "application/json"},
        _json({"error": {"code": code, "message": message}}),
    )


def _bound_id(url: str | None) -> str | None:
    if url is None:
        return None
    found = re.search(r"contacts\(([0-9a-f-]{36})\)", url)
    assert found is not None, url
    return found.group(1)


@pytest.fixture
def dataverse() -> Iterator[FakeDataverse]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, contact TEXT)")
    db.execute("CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL)")
    yield FakeDataverse(db)
    db.close()


# -- building requests ------------------------------------------------------------------


def op(
    method: str,
    url: str,
    body: Any = None,
    *,
    content_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Part:
    inner = dict(headers or {})
    payload = b""
    if body is not None:
        inner["Content-Type"] = "application/json; type=entry"
        payload = _json(body)
    part_headers = {"Content-Type": "application/http", "Content-Transfer-Encoding": "binary"}
    if content_id is not None:
        part_headers["Content-ID"] = content_id
    return Part(part_headers, format_http_request(HttpRequest(method, url, inner, payload)))


def changeset(*parts: Part) -> Part:
    boundary = f"changeset_{uuid.uuid4()}"
    return Part(
        {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}, join_multipart(parts, boundary)
    )


def batch(*parts: Part) -> tuple[bytes, str]:
    boundary = f"batch_{uuid.uuid4()}"
    return join_multipart(parts, boundary), f'multipart/mixed; boundary="{boundary}"'


def run(dv: FakeDataverse, *parts: Part, continue_on_error: bool = False) -> tuple[int, str, bytes]:
    body, content_type = batch(*parts)
    return run_batch(
        body,
        content_type,
        dispatch=dv.dispatch,
        changeset=dv.changeset,
        continue_on_error=continue_on_error,
        base_url=BASE,
    )


@dataclass
class Reply:
    """A batch reply read back: top-level parts, with changesets as lists."""

    status: int
    items: list[Part | list[Part]]

    def responses(self, index: int) -> list[HttpResponse]:
        item = self.items[index]
        return [parse_http_response(p.body) for p in (item if isinstance(item, list) else [item])]


def read_reply(result: tuple[int, str, bytes]) -> Reply:
    status, content_type, body = result
    boundary = boundary_of(content_type)
    assert boundary is not None and boundary.startswith("batchresponse_"), content_type
    assert body.startswith(f"--{boundary}\r\n".encode())
    items: list[Part | list[Part]] = []
    for part in split_multipart(body, boundary):
        inner = boundary_of(header(part, "Content-Type") or "")
        if inner is not None:
            assert inner.startswith("changesetresponse_")
            items.append(split_multipart(part.body, inner))
        else:
            assert header(part, "Content-Type") == "application/http"
            assert header(part, "Content-Transfer-Encoding") == "binary"
            items.append(part)
    return Reply(status, items)


def error_of(result: tuple[int, str, bytes]) -> tuple[int, str, str]:
    status, content_type, body = result
    assert content_type.startswith("application/json")
    error = json.loads(body)["error"]
    return status, error["code"], error["message"]


# -- tests ------------------------------------------------------------------------------


def test_changeset_creates_and_references_with_content_ids(dataverse: FakeDataverse) -> None:
    reply = read_reply(
        run(
            dataverse,
            changeset(
                op("POST", f"{BASE}/accounts", {"name": "A"}, content_id="1"),
                op("PATCH", "$1", {"name": "B"}, content_id="2", headers={"If-Match": "*"}),
                op("POST", f"{BASE}/contacts", {"name": "Ann"}, content_id="3"),
                op(
                    "POST",
                    "accounts",
                    {"name": "C", "primarycontactid@odata.bind": "$3"},
                    content_id="4",
                ),
            ),
        )
    )

    assert reply.status == 200
    assert dataverse.names() == ["B", "C"]
    (parts,) = reply.items
    assert isinstance(parts, list)
    assert [header(p, "Content-ID") for p in parts] == ["1", "2", "3", "4"]
    created, updated, contact, bound = reply.responses(0)
    assert [r.status for r in (created, updated, contact, bound)] == [204] * 4
    account_url = header(created, "OData-EntityId")
    assert account_url is not None and account_url.startswith(f"{BASE}/accounts(")
    assert header(created, "Location") == account_url
    # $1 reached the app as the created account, relative to the Web API root.
    assert dataverse.seen[1].url == account_url.removeprefix(f"{BASE}/")
    assert dataverse.seen[1].headers["If-Match"] == "*"
    contact_id = dataverse.db.execute("SELECT id FROM contacts").fetchone()[0]
    assert (
        json.loads(dataverse.seen[3].body)["primarycontactid@odata.bind"]
        == f"/contacts({contact_id})"
    )
    assert (
        dataverse.db.execute("SELECT contact FROM accounts WHERE name = 'C'").fetchone()[0]
        == contact_id
    )


def test_reference_as_url_prefix_and_odata_id(dataverse: FakeDataverse) -> None:
    reply = read_reply(
        run(
            dataverse,
            changeset(
                op("POST", "/api/data/v9.2/accounts", {"name": "A"}, content_id="1"),
                op("POST", "/api/data/v9.2/contacts", {"name": "Ann"}, content_id="2"),
                op("PUT", "$1/primarycontactid/$ref", {"@odata.id": "$2"}, content_id="3"),
            ),
        )
    )

    assert reply.status == 200
    account_id = dataverse.db.execute("SELECT id FROM accounts").fetchone()[0]
    contact_id = dataverse.db.execute("SELECT id FROM contacts").fetchone()[0]
    put = dataverse.seen[2]
    assert put.url == f"accounts({account_id})/primarycontactid/$ref"
    assert json.loads(put.body) == {"@odata.id": f"{BASE}/contacts({contact_id})"}
    assert dataverse.db.execute("SELECT contact FROM accounts").fetchone()[0] == contact_id


def test_failed_changeset_rolls_back_and_answers_only_the_failing_part(
    dataverse: FakeDataverse,
) -> None:
    result = run(
        dataverse,
        op("POST", "accounts", {"name": "before"}),
        changeset(
            op("POST", "accounts", {"name": "A"}, content_id="1"),
            op("POST", "contacts", {"name": "Ann"}, content_id="2"),
            op("PATCH", "$1", {"name": ""}, content_id="3"),
        ),
        op("POST", "accounts", {"name": "after"}),
    )
    reply = read_reply(result)

    assert reply.status == 400
    assert dataverse.names() == ["before"]  # A is gone, "after" never ran
    assert dataverse.names("contacts") == []
    assert len(reply.items) == 2
    failing = reply.items[1]
    assert isinstance(failing, Part)  # not a nested changesetresponse
    assert header(failing, "Content-ID") == "3"
    (response,) = reply.responses(1)
    assert response.status == 400
    assert json.loads(response.body)["error"]["code"] == "0x80040200"


def test_first_failure_ends_the_batch_without_continue_on_error(dataverse: FakeDataverse) -> None:
    reply = read_reply(
        run(
            dataverse,
            op("POST", "accounts", {"name": "A"}),
            op("POST", "accounts", {}),
            op("POST", "accounts", {"name": "C"}),
        )
    )

    assert reply.status == 400
    assert [r.status for i in range(len(reply.items)) for r in reply.responses(i)] == [204, 400]
    assert dataverse.names() == ["A"]


def test_continue_on_error_runs_everything_and_reports_each_failure(
    dataverse: FakeDataverse,
) -> None:
    reply = read_reply(
        run(
            dataverse,
            op("POST", "accounts", {"name": "A"}),
            op("POST", "accounts", {}),
            changeset(
                op("POST", "accounts", {"name": "rolled back"}, content_id="1"),
                op("POST", "accounts", {}, content_id="2"),
            ),
            op("PATCH", "$1", {"name": "X"}),
            op("POST", "accounts", {"name": "D"}),
            continue_on_error=True,
        )
    )

    assert reply.status == 200
    statuses = [r.status for i in range(len(reply.items)) for r in reply.responses(i)]
    assert statuses == [204, 400, 400, 400, 204]
    assert dataverse.names() == ["A", "D"]
    # $1 was created, then rolled back: it no longer refers to anything.
    (stale,) = reply.responses(3)
    assert "Content-ID Reference: '$1' does not exist in the batch context." in stale.body.decode()


def test_get_inside_a_changeset_is_refused(dataverse: FakeDataverse) -> None:
    status, code, message = error_of(
        run(
            dataverse,
            changeset(
                op("POST", "accounts", {"name": "A"}, content_id="1"),
                op("GET", "accounts?$select=name", content_id="2"),
            ),
        )
    )

    assert (status, code) == (400, BATCH_PAYLOAD_ERROR_CODE)
    assert message.startswith(
        "An invalid HTTP method 'GET' was detected for a request in a change set."
    )
    assert dataverse.seen == []


def test_forward_reference_is_refused_before_anything_runs(dataverse: FakeDataverse) -> None:
    result = run(
        dataverse,
        changeset(
            op("POST", "contacts", {"name": "Ann", "parent@odata.bind": "$1"}, content_id="2"),
            op("POST", "accounts", {"name": "A"}, content_id="1"),
        ),
    )

    assert error_of(result)[::2] == (
        400,
        "Content-ID Reference: '$1' does not exist in the batch context.",
    )
    assert dataverse.seen == []
    assert dataverse.names() == []


def test_urls_are_normalised_to_paths_under_the_web_api_root(dataverse: FakeDataverse) -> None:
    account_id = str(uuid.uuid4())
    dataverse.db.execute("INSERT INTO accounts VALUES (?, 'A', NULL)", (account_id,))

    reply = read_reply(
        run(
            dataverse,
            op("GET", f"{BASE}/accounts({account_id})?$select=name"),
            op("GET", f"https://other-host/api/data/v9.2/accounts({account_id})"),
            op("GET", f"/api/data/v9.2/accounts({account_id})?$select=name&$expand=x"),
            op("GET", f"accounts({account_id})"),
            op("GET", f"/api/data/v9.1/accounts({account_id})"),
            op("GET", "/somewhere/else"),
            continue_on_error=True,
        )
    )

    assert [r.url for r in dataverse.seen] == [
        f"accounts({account_id})?$select=name",
        f"accounts({account_id})",
        f"accounts({account_id})?$select=name&$expand=x",
        f"accounts({account_id})",
        f"accounts({account_id})",
    ]
    assert [r.status for i in range(6) for r in reply.responses(i)] == [200] * 5 + [400]


def test_more_than_1000_operations_are_refused(dataverse: FakeDataverse) -> None:
    gets = [op("GET", "accounts") for _ in range(999)]
    writes = changeset(op("POST", "accounts", {"name": "A"}), op("POST", "accounts", {"name": "B"}))

    status, code, message = error_of(run(dataverse, *gets, writes))

    assert (status, code) == (400, BATCH_PAYLOAD_ERROR_CODE)
    assert "1000" in message
    assert dataverse.seen == []


def test_exactly_1000_operations_run(dataverse: FakeDataverse) -> None:
    reply = read_reply(
        run(dataverse, *[op("GET", "accounts") for _ in range(1000)], continue_on_error=True)
    )

    assert reply.status == 200
    assert len(reply.items) == 1000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"this is not a batch", 'multipart/mixed; boundary="batch_x"'),
        (
            b"--batch_x\r\nContent-Type: application/http\r\n\r\nPOST accounts HTTP/1.1\r\n",
            "multipart/mixed; boundary=batch_x",
        ),
        (b'{"name": "A"}', "application/json"),
        (
            b"--batch_x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--batch_x--\r\n",
            "multipart/mixed; boundary=batch_x",
        ),
        (
            b"--batch_x\r\nContent-Type: application/http\r\n\r\nnot http\r\n--batch_x--\r\n",
            "multipart/mixed; boundary=batch_x",
        ),
        (
            b"--batch_x\r\nContent-Type: multipart/mixed\r\n\r\n\r\n--batch_x--\r\n",
            "multipart/mixed; boundary=batch_x",
        ),
        (b"\xff\xfe\x00garbage", "multipart/mixed; boundary=batch_x"),
    ],
)
def test_malformed_batches_answer_400_json(
    dataverse: FakeDataverse, body: bytes, content_type: str
) -> None:
    status, code, message = error_of(
        run_batch(
            body,
            content_type,
            dispatch=dataverse.dispatch,
            changeset=dataverse.changeset,
            continue_on_error=False,
            base_url=BASE,
        )
    )

    assert (status, code) == (400, BATCH_PAYLOAD_ERROR_CODE)
    assert message
    assert dataverse.seen == []


def test_nested_batches_are_refused(dataverse: FakeDataverse) -> None:
    inner_body, inner_type = batch(op("POST", "accounts", {"name": "A"}))
    nested = Part(
        {"Content-Type": "application/http"},
        format_http_request(
            HttpRequest("POST", f"{BASE}/$batch", {"Content-Type": inner_type}, inner_body)
        ),
    )
    changeset_in_changeset = changeset(changeset(op("POST", "accounts", {"name": "A"})))

    for part in (nested, changeset_in_changeset):
        status, _, message = error_of(run(dataverse, part))
        assert status == 400
        assert "batch" in message or "changeset" in message
    assert dataverse.seen == []


def test_python_sdk_reads_the_reply(dataverse: FakeDataverse) -> None:
    batch_base = pytest.importorskip("PowerPlatform.Dataverse.data._batch_base")
    status, content_type, body = run(
        dataverse,
        changeset(
            op("POST", f"{BASE}/accounts", {"name": "A"}, content_id="1"),
            op("PATCH", "$1", {"name": "B"}, content_id="2"),
        ),
        op("POST", "accounts", {}),
        continue_on_error=True,
    )

    class Response:
        headers = {"Content-Type": content_type}
        text = body.decode()

    result = batch_base._BatchBase._parse_batch_response(None, Response())
    account_id = dataverse.db.execute("SELECT id FROM accounts").fetchone()[0]
    assert [(r.status_code, r.content_id) for r in result.responses] == [
        (204, "1"),
        (204, "2"),
        (400, None),
    ]
    assert result.responses[0].entity_id == account_id
    assert result.responses[2].error_code == "0x80040200"


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        ("odata.continue-on-error", True),
        ('odata.include-annotations="*", odata.continue-on-error', True),
        ("odata.continue-on-error=false", False),
        ("return=representation", False),
        (None, False),
    ],
)
def test_continue_on_error_preference(prefer: str | None, expected: bool) -> None:
    assert continue_on_error_requested(prefer) is expected
