"""`multipart/mixed` bodies and the HTTP messages embedded in them, as `$batch` uses them.

Shared by our Dataverse client (which writes batch requests and reads batch replies) and
the embedded Dataverse (which reads requests and writes replies). Only the subset
`$batch` needs is covered: `multipart/mixed` (RFC 2046 §5.1) whose parts are either
nested `multipart/mixed` (a changeset) or `application/http` holding one HTTP/1.1 request
or response with `Content-Transfer-Encoding: binary`.

Reading is lenient where real clients differ (CRLF or bare LF line ends, a quoted or bare
`boundary=` parameter, no blank line after a body-less request) and strict where the input
is not multipart at all (no delimiter, no closing delimiter, a header line without a
colon). Writing always uses CRLF and a closing `--boundary--`.

Errors::

    ValueError
    └── MultipartError        body, part or embedded message cannot be read or written
        └── TooManyParts      more parts than the caller allows
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PARTS",
    "HttpRequest",
    "HttpResponse",
    "MultipartError",
    "Part",
    "TooManyParts",
    "boundary_of",
    "format_http_request",
    "format_http_response",
    "header",
    "join_multipart",
    "parse_http_request",
    "parse_http_response",
    "split_multipart",
]

# Dataverse accepts at most 1000 operations per batch; a changeset holds parts of its
# own, but never more than the batch limit, so one bound serves both levels.
MAX_PARTS = 1000
# 1000 operations of a few KB each fit comfortably; the largest legitimate single
# payload (a note attachment, 5 MB by default) still fits with room to spare.
MAX_BODY_BYTES = 32 * 1024 * 1024
# RFC 2046: a boundary is 1 to 70 characters and does not end with a space.
MAX_BOUNDARY_CHARS = 70
MAX_HEADER_LINES = 100  # per part or embedded message; real parts carry fewer than 10

_CRLF = b"\r\n"
_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_LINE = re.compile(r"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")


class MultipartError(ValueError):
    """A multipart body, a part or an embedded HTTP message is malformed."""


class TooManyParts(MultipartError):
    """A multipart body holds more parts than allowed."""


@dataclass
class Part:
    """One body part: its MIME headers and its raw content."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class HttpRequest:
    """An HTTP request as carried inside an `application/http` part."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class HttpResponse:
    """An HTTP response as carried inside an `application/http` part."""

    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def header(headers_or_part: object, name: str) -> str | None:
    """The value of header `name` (case-insensitive), or None if absent.

    Accepts a header mapping or anything with a `headers` mapping (`Part`, `HttpRequest`,
    `HttpResponse`).
    """
    headers = getattr(headers_or_part, "headers", headers_or_part)
    # `type() is dict` first: the ABC check alone was a third of this, once per header read.
    if type(headers) is not dict and not isinstance(headers, Mapping):
        raise TypeError(f"no headers in {type(headers_or_part).__name__}")
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return str(value)
    return None


def boundary_of(content_type: str) -> str | None:
    """The `boundary` parameter of a `multipart/*` content type, unquoted, or None.

    None also when the type is not multipart or the boundary is not a valid RFC 2046
    boundary.
    """
    media_type, _, params = content_type.partition(";")
    if not media_type.strip().lower().startswith("multipart/"):
        return None
    for name, value in _split_params(params):
        if name == "boundary":
            if 0 < len(value) <= MAX_BOUNDARY_CHARS and _BOUNDARY_CHARS.match(value):
                return value
            return None
    return None


def _split_params(params: str) -> list[tuple[str, str]]:
    """`;`-separated `name=value` pairs; values may be quoted strings with `\\` escapes."""
    pairs: list[tuple[str, str]] = []
    i = 0
    n = len(params)
    while i < n:
        while i < n and params[i] in " \t;":
            i += 1
        start = i
        while i < n and params[i] not in "=;":
            i += 1
        name = params[start:i].strip().lower()
        if i >= n or params[i] == ";":
            continue
        i += 1  # skip "="
        while i < n and params[i] in " \t":
            i += 1
        if i < n and params[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and params[i] != '"':
                if params[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(params[i])
                i += 1
            i += 1  # closing quote (or end)
            value = "".join(chars)
            while i < n and params[i] != ";":
                i += 1
        else:
            start = i
            while i < n and params[i] != ";":
                i += 1
            value = params[start:i].strip()
        if name:
            pairs.append((name, value))
    return pairs


def _find_delimiters(body: bytes, boundary: bytes) -> list[tuple[int, int, bool]]:
    """Every delimiter line as (start of the line break before it, end of its line, is_close).

    A delimiter must start a line; the line break before it belongs to the delimiter
    (RFC 2046), so the part before ends at `start`.
    """
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = 0
    while True:
        at = body.find(marker, pos)
        if at < 0:
            return found
        pos = at + len(marker)
        if at > 0 and body[at - 1 : at] != b"\n":
            continue
        after = at + len(marker)
        is_close = body[after : after + 2] == b"--"
        if is_close:
            after += 2
        # Transport padding (spaces, tabs) may follow the delimiter before the line end.
        while after < len(body) and body[after : after + 1] in (b" ", b"\t"):
            after += 1
        if after < len(body):
            if body[after : after + 2] == _CRLF:
                line_end = after + 2
            elif body[after : after + 1] == b"\n":
                line_end = after + 1
            else:
                continue  # the boundary text is only the prefix of some longer line
        elif is_close:
            line_end = after
        else:
            continue
        start = at
        if at >= 2 and body[at - 2 : at] == _CRLF:
            start = at - 2
        elif at >= 1:
            start = at - 1
        found.append((start, line_end, is_close))
        if is_close:
            return found
        pos = line_end


def split_multipart(
    body: bytes,
    boundary: str,
    *,
    max_parts: int = MAX_PARTS,
    max_bytes: int = MAX_BODY_BYTES,
) -> list[Part]:
    """The parts of a `multipart/*` body delimited by `boundary`.

    The preamble and epilogue are ignored. Raises `MultipartError` when the body is
    larger than `max_bytes`, has no opening or no closing delimiter, or a part's headers
    cannot be read; `TooManyParts` when it holds more than `max_parts` parts.
    """
    if len(body) > max_bytes:
        raise MultipartError(f"The multipart body is larger than {max_bytes} bytes.")
    if not boundary or len(boundary) > MAX_BOUNDARY_CHARS:
        raise MultipartError("The multipart boundary is missing or too long.")
    delimiters = _find_delimiters(body, boundary.encode("latin-1", "replace"))
    if not delimiters:
        raise MultipartError(f"The multipart body holds no '--{boundary}' delimiter.")
    if not delimiters[-1][2]:
        raise MultipartError(f"The multipart body does not end with '--{boundary}--'.")
    if len(delimiters) - 1 > max_parts:
        raise TooManyParts(f"The multipart body holds more than {max_parts} parts.")
    parts: list[Part] = []
    for (_, content_start, _), (content_end, _, _) in zip(delimiters, delimiters[1:], strict=False):
        parts.append(_parse_part(body[content_start:content_end]))
    return parts


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    """Header lines and body of a MIME part or HTTP message (CRLF or LF line ends).

    With no blank line the whole text is the head and the body is empty.
    """
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        head, rest = data[:crlf], data[crlf + 4 :]
    elif lf >= 0:
        head, rest = data[:lf], data[lf + 2 :]
    else:
        head, rest = data, b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MultipartError("A header block is not valid UTF-8.") from exc
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines, rest


def _parse_headers(lines: Sequence[str]) -> dict[str, str]:
    """Header lines to a dict; folded lines continue the previous header, repeats join."""
    if len(lines) > MAX_HEADER_LINES:
        raise MultipartError(f"More than {MAX_HEADER_LINES} header lines.")
    headers: dict[str, str] = {}
    spelled: dict[str, str] = {}  # lower-case name -> the spelling first seen
    last: str | None = None
    for line in lines:
        if line[:1] in (" ", "\t") and last is not None:
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _is_token(name):
            raise MultipartError(f"Invalid header line {line[:100]!r}.")
        existing = spelled.get(name.lower())
        if existing is None:
            headers[name] = value.strip()
            spelled[name.lower()] = name
            last = name
        else:
            headers[existing] = f"{headers[existing]}, {value.strip()}"
            last = existing
    return headers


def _parse_part(content: bytes) -> Part:
    if content.startswith((_CRLF, b"\n")):
        # A blank first line: the part has no headers, everything after it is the body.
        return Part(headers={}, body=content[2 if content.startswith(_CRLF) else 1 :])
    lines, body = _split_head(content)
    return Part(headers=_parse_headers(lines), body=body)


@functools.lru_cache(maxsize=256)
def _is_token(name: str) -> bool:
    """Whether `name` is a valid header name (the same few names come in every part)."""
    return _TOKEN.match(name) is not None


def _check_header_text(name: str, value: str) -> None:
    if not _is_token(name):
        raise MultipartError(f"Invalid header name {name!r}.")
    if "\r" in value or "\n" in value:
        raise MultipartError(f"Header {name!r} holds a line break.")


def _format_headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        _check_header_text(name, value)
        out += f"{name}: {value}".encode() + _CRLF
    return bytes(out)


def join_multipart(parts: Sequence[Part], boundary: str) -> bytes:
    """A `multipart/*` body of `parts` with CRLF line ends and a closing delimiter.

    `split_multipart(join_multipart(parts, b), b)` gives back `parts`. Raises
    `MultipartError` for an invalid boundary or header.
    """
    if not (0 < len(boundary) <= MAX_BOUNDARY_CHARS and _BOUNDARY_CHARS.match(boundary)):
        raise MultipartError(f"Invalid multipart boundary {boundary!r}.")
    marker = b"--" + boundary.encode("ascii")
    out = bytearray()
    for part in parts:
        if marker in part.body:
            raise MultipartError("A part's body contains the multipart boundary.")
        out += marker + _CRLF + _format_headers(part.headers) + _CRLF + part.body + _CRLF
    out += marker + b"--" + _CRLF
    return bytes(out)


def _strip_leading_blank_lines(data: bytes) -> bytes:
    while data.startswith((_CRLF, b"\n")):
        data = data[2:] if data.startswith(_CRLF) else data[1:]
    return data


def parse_http_request(data: bytes) -> HttpRequest:
    """The request in an `application/http` part: `POST url HTTP/1.1`, headers, body.

    The HTTP version may be missing, and so may the blank line before an empty body. The
    URL is taken as written, spaces included (some clients leave `$filter` unencoded).
    Raises `MultipartError` when the start line or a header is malformed.
    """
    lines, body = _split_head(_strip_leading_blank_lines(data))
    if not lines:
        raise MultipartError("The embedded HTTP request is empty.")
    method, _, target = lines[0].strip().partition(" ")
    url, _, version = target.strip().rpartition(" ")
    if not version.startswith("HTTP/"):
        # No version at all: the whole target is the URL.
        url = target.strip()
    elif not version.startswith("HTTP/1."):
        raise MultipartError(f"Unsupported HTTP version in {lines[0][:100]!r}.")
    url = url.strip()
    if not url:
        raise MultipartError(f"Invalid HTTP request line {lines[0][:100]!r}.")
    if not _TOKEN.match(method) or not method.isupper():
        raise MultipartError(f"Invalid HTTP method {method[:20]!r}.")
    return HttpRequest(method=method, url=url, headers=_parse_headers(lines[1:]), body=body)


def parse_http_response(data: bytes) -> HttpResponse:
    """The response in an `application/http` part: `HTTP/1.1 204 No Content`, headers, body.

    Raises `MultipartError` when the status line or a header is malformed.
    """
    lines, body = _split_head(_strip_leading_blank_lines(data))
    if not lines:
        raise MultipartError("The embedded HTTP response is empty.")
    match = _STATUS_LINE.match(lines[0].strip())
    if match is None:
        raise MultipartError(f"Invalid HTTP status line {lines[0][:100]!r}.")
    return HttpResponse(
        status=int(match.group(3)),
        reason=(match.group(4) or "").strip(),
        headers=_parse_headers(lines[1:]),
        body=body,
    )


def format_http_request(req: HttpRequest) -> bytes:
    """`req` as the content of an `application/http` part (CRLF line ends)."""
    if not _TOKEN.match(req.method) or not req.url or any(c in req.url for c in " \r\n"):
        raise MultipartError(f"Cannot write request line for {req.method!r} {req.url!r}.")
    start = f"{req.method} {req.url} HTTP/1.1".encode()
    return start + _CRLF + _format_headers(req.headers) + _CRLF + req.body


def format_http_response(resp: HttpResponse) -> bytes:
    """`resp` as the content of an `application/http` part (CRLF line ends).

    An empty reason is filled in from the status code (`204 No Content`).
    """
    reason = resp.reason
    if not reason:
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = ""
    if "\r" in reason or "\n" in reason or not 100 <= resp.status <= 999:
        raise MultipartError(f"Cannot write status line for {resp.status} {reason!r}.")
    start = f"HTTP/1.1 {resp.status} {reason}".rstrip().encode()
    return start + _CRLF + _format_headers(resp.headers) + _CRLF + resp.body
