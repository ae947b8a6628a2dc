"""multipart/mixed and embedded HTTP messages, as Dataverse `$batch` writes them."""

from __future__ import annotations

import json

import pytest

from connector.dataverse.multipart import (
    HttpRequest,
    HttpResponse,
    MultipartError,
    Part,
    TooManyParts,
    boundary_of,
    format_http_request,
    format_http_response,
    header,
    join_multipart,
    parse_http_request,
    parse_http_response,
    split_multipart,
)

BATCH = "batch_598c1f5e-2a7b-4c1d-9d62-0c5a1f3e7b21"
CHANGESET = "changeset_fadb3c44-8d0e-4b5f-a1c2-7e9d6b4a2f10"

# The request Microsoft's Python SDK sent (reference/dataverse.md §1), boundaries written
# out in full, with the CRLF line ends the SDK uses.
SDK_EXAMPLE = (
    f"--{BATCH}\n"
    f'Content-Type: multipart/mixed; boundary="{CHANGESET}"\n'
    "\n"
    f"--{CHANGESET}\n"
    "Content-Type: application/http\n"
    "Content-Transfer-Encoding: binary\n"
    "Content-ID: 1\n"
    "\n"
    "POST https://localhost:8443/api/data/v9.2/accounts HTTP/1.1\n"
    "Content-Type: application/json; type=entry\n"
    "\n"
    '{"name": "A"}\n'
    f"--{CHANGESET}\n"
    "Content-Type: application/http\n"
    "Content-Transfer-Encoding: binary\n"
    "Content-ID: 2\n"
    "\n"
    "PATCH $1 HTTP/1.1\n"
    "Content-Type: application/json; type=entry\n"
    "If-Match: *\n"
    "\n"
    '{"name": "B"}\n'
    f"--{CHANGESET}--\n"
    "\n"
    f"--{BATCH}--\n"
)


def _check_sdk_example(body: bytes) -> None:
    (outer,) = split_multipart(body, BATCH)
    assert boundary_of(header(outer, "content-type") or "") == CHANGESET
    create, update = split_multipart(outer.body, CHANGESET)
    assert header(create, "Content-ID") == "1"
    assert header(update, "content-id") == "2"

    post = parse_http_request(create.body)
    assert post.method == "POST"
    assert post.url == "https://localhost:8443/api/data/v9.2/accounts"
    assert header(post, "Content-Type") == "application/json; type=entry"
    assert json.loads(post.body) == {"name": "A"}

    patch = parse_http_request(update.body)
    assert (patch.method, patch.url) == ("PATCH", "$1")
    assert header(patch, "if-match") == "*"
    assert json.loads(patch.body) == {"name": "B"}


def test_reads_the_sdk_example_with_crlf_line_ends() -> None:
    _check_sdk_example(SDK_EXAMPLE.replace("\n", "\r\n").encode())


def test_reads_the_sdk_example_with_bare_lf_line_ends() -> None:
    _check_sdk_example(SDK_EXAMPLE.encode())


def test_reads_what_the_python_sdk_serialiser_writes() -> None:
    batch_base = pytest.importorskip("PowerPlatform.Dataverse.data._batch_base")
    raw = pytest.importorskip("PowerPlatform.Dataverse.data._raw_request")
    serialiser = batch_base._BatchBase.__new__(batch_base._BatchBase)
    requests = [
        raw._RawRequest(
            "POST", "https://localhost:8443/api/data/v9.2/accounts", '{"name": "A"}', None, 1
        ),
        raw._RawRequest("PATCH", "$1", '{"name": "B"}', {"If-Match": "*"}, 2),
    ]
    get = raw._RawRequest("GET", "https://localhost:8443/api/data/v9.2/accounts?$select=name")
    body = serialiser._build_batch_body([batch_base._ChangeSetBatchItem(requests), get], BATCH)

    changeset, query = split_multipart(body.encode(), BATCH)
    inner = split_multipart(
        changeset.body, boundary_of(header(changeset, "Content-Type") or "") or ""
    )
    assert [parse_http_request(p.body).method for p in inner] == ["POST", "PATCH"]
    assert json.loads(parse_http_request(inner[1].body).body) == {"name": "B"}
    got = parse_http_request(query.body)
    assert (got.method, got.url, got.body) == (
        "GET",
        "https://localhost:8443/api/data/v9.2/accounts?$select=name",
        b"",
    )


def test_writes_the_byte_shape_of_a_dataverse_reply() -> None:
    created = HttpResponse(
        204,
        "No Content",
        {
            "OData-Version": "4.0",
            "Location": "https://org/api/data/v9.2/tasks(e7)",
            "OData-EntityId": "https://org/api/data/v9.2/tasks(e7)",
        },
        b"",
    )
    part = Part(
        {
            "Content-Type": "application/http",
            "Content-Transfer-Encoding": "binary",
            "Content-ID": "1",
        },
        format_http_response(created),
    )
    assert join_multipart([part], "changesetresponse_64cc") == (
        b"--changesetresponse_64cc\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"Content-ID: 1\r\n"
        b"\r\n"
        b"HTTP/1.1 204 No Content\r\n"
        b"OData-Version: 4.0\r\n"
        b"Location: https://org/api/data/v9.2/tasks(e7)\r\n"
        b"OData-EntityId: https://org/api/data/v9.2/tasks(e7)\r\n"
        b"\r\n"
        b"\r\n"
        b"--changesetresponse_64cc--\r\n"
    )


def test_split_gives_back_what_join_wrote() -> None:
    parts = [
        Part({"Content-Type": "application/http"}, b'HTTP/1.1 200 OK\r\n\r\n{"a": 1}'),
        Part({}, b""),
        Part({"X-Empty": ""}, b"line one\r\n\r\nline three\n"),
    ]
    assert split_multipart(join_multipart(parts, "b_1"), "b_1") == parts


def test_http_messages_round_trip() -> None:
    request = HttpRequest("PATCH", "accounts(1)", {"If-Match": "*"}, b'{"name":"B"}')
    assert parse_http_request(format_http_request(request)) == request
    response = HttpResponse(412, "Precondition Failed", {"OData-Version": "4.0"}, b"{}")
    assert parse_http_response(format_http_response(response)) == response


def test_fills_in_the_reason_phrase() -> None:
    assert format_http_response(HttpResponse(204)).startswith(b"HTTP/1.1 204 No Content\r\n")


def test_request_without_body_needs_no_blank_line() -> None:
    request = parse_http_request(b"GET accounts?$select=name HTTP/1.1\r\nAccept: application/json")
    assert request.url == "accounts?$select=name"
    assert header(request, "ACCEPT") == "application/json"
    assert request.body == b""


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ('multipart/mixed; boundary="batch_1"', "batch_1"),
        ("multipart/mixed;boundary=batch_2", "batch_2"),
        ("Multipart/Mixed; charset=utf-8; BOUNDARY=batch_3; x=y", "batch_3"),
        ('multipart/mixed; boundary="a:b=c d"', "a:b=c d"),
        ('multipart/mixed; boundary="has;semicolon"', None),  # not an RFC 2046 character
        ("application/json", None),
        ("multipart/mixed", None),
        ('multipart/mixed; boundary=""', None),
        ("multipart/mixed; boundary=" + "x" * 71, None),
    ],
)
def test_boundary_of(content_type: str, expected: str | None) -> None:
    assert boundary_of(content_type) == expected


def test_boundary_text_inside_a_longer_line_is_not_a_delimiter() -> None:
    body = b"--b\r\nX: 1\r\n\r\n--bb is not a delimiter\r\n--b--\r\n"
    (part,) = split_multipart(body, "b")
    assert part.body == b"--bb is not a delimiter"


def test_ignores_preamble_and_epilogue() -> None:
    body = b"preamble\r\n--b\r\nX: 1\r\n\r\nbody\r\n--b--\r\nepilogue"
    assert split_multipart(body, "b") == [Part({"X": "1"}, b"body")]


@pytest.mark.parametrize(
    "body",
    [
        b"not multipart at all",
        b"--b\r\nContent-Type: application/http\r\n\r\nGET x HTTP/1.1\r\n",  # never closed
        b"--b\r\nno colon here\r\n\r\nbody\r\n--b--\r\n",
        b"--b\r\n\xff\xfe: x\r\n\r\nbody\r\n--b--\r\n",
    ],
)
def test_garbage_raises_multipart_error(body: bytes) -> None:
    with pytest.raises(MultipartError):
        split_multipart(body, "b")


def test_refuses_more_parts_than_allowed() -> None:
    body = join_multipart([Part({}, b"x")] * 4, "b")
    assert len(split_multipart(body, "b", max_parts=4)) == 4
    with pytest.raises(TooManyParts):
        split_multipart(body, "b", max_parts=3)


def test_refuses_an_oversized_body() -> None:
    body = join_multipart([Part({}, b"x" * 100)], "b")
    with pytest.raises(MultipartError):
        split_multipart(body, "b", max_bytes=50)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"POST\r\n\r\n",
        b"post url HTTP/1.1\r\n",
        b"POST HTTP/1.1\r\n",
        b"GET x HTTP/2\r\n",
    ],
)
def test_bad_request_lines_raise(data: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_http_request(data)


@pytest.mark.parametrize("data", [b"", b"HTTP/1.1 abc OK\r\n", b"204 No Content\r\n"])
def test_bad_status_lines_raise(data: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_http_response(data)


def test_refuses_to_write_a_header_that_would_split_the_message() -> None:
    with pytest.raises(MultipartError):
        join_multipart([Part({"X": "a\r\nInjected: 1"}, b"")], "b")
    with pytest.raises(MultipartError):
        format_http_request(HttpRequest("GET", "a b", {}, b""))


def test_header_lookup_is_case_insensitive_everywhere() -> None:
    headers = {"OData-EntityId": "x"}
    assert header(headers, "odata-entityid") == "x"
    assert header(Part(headers, b""), "ODATA-ENTITYID") == "x"
    assert header(HttpResponse(204, "", headers, b""), "Location") is None


def test_repeated_headers_are_joined() -> None:
    request = parse_http_request(b"GET x HTTP/1.1\r\nPrefer: a\r\nprefer: b\r\n\r\n")
    assert header(request, "Prefer") == "a, b"


def test_request_line_keeps_an_unencoded_query_whole() -> None:
    request = parse_http_request(b"GET accounts?$filter=name eq 'A B' HTTP/1.1\r\n\r\n")
    assert request.url == "accounts?$filter=name eq 'A B'"
    assert parse_http_request(b"DELETE accounts(1)\r\n").url == "accounts(1)"
