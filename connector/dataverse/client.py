"""`DataverseClient`: records over the Dataverse Web API (OData v4).

One client holds one `requests.Session`, a `TokenProvider` and the retry policy:

- 429 and 503 wait the server's ``Retry-After`` (whole seconds), or ``2^n`` seconds
  when it is missing; network failures back off ``1, 2, 4, ...`` seconds. Retries stop
  once the total wait would pass `max_retry_wait_secs`, and the last error is raised.
- A network failure is retried only when repeating the request is harmless: always for
  GET/PATCH/DELETE, and for POST only when the request provably never left (refused
  connection, DNS failure, connect timeout).
- 401 drops the cached token and retries exactly once with a fresh one.

Sleeping goes through the `sleep` keyword (default `time.sleep`), so tests pass a
function that records the waits instead of waiting.

```python
client = DataverseClient("https://org.crm.dynamics.com/api/data/v9.2/", tokens)
contact_id = client.create("contacts", {"firstname": "Ann"})
for row in client.list("contacts", select=["fullname"], filter=eq("lastname", "O'Neil")):
    ...
```
"""

from __future__ import annotations

import builtins
import enum
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception

from .auth import TokenProvider
from .errors import (
    ConnectionFailed,
    DataverseError,
    PreconditionFailed,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    error_from_response,
)
from .odata import check_name, column, encode_json, guid, record_id_from_headers

if TYPE_CHECKING:
    from .batch import Batch

__all__ = [
    "DEFAULT_MAX_RETRY_WAIT_SECS",
    "DEFAULT_TIMEOUT_SECS",
    "DataverseClient",
    "Listing",
    "Record",
    "UpsertMode",
    "WhoAmI",
]

log = logging.getLogger(__name__)

Record = dict[str, Any]

DEFAULT_TIMEOUT_SECS = 30.0
# Dataverse's own Retry-After for the request-count limit is usually well under a minute;
# a chat reply should not hang longer than that.
DEFAULT_MAX_RETRY_WAIT_SECS = 60.0
# Retry-After: 0 would never exhaust the wait budget; this bounds the attempts too.
MAX_ATTEMPTS = 10

# Characters left readable in query values; '&', '+', '#', '%' and spaces are encoded.
_QUERY_SAFE = "$'()*,;=:@/!"
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


class UpsertMode(enum.Enum):
    """What an upsert may do: create or update, create only, or update only."""

    ANY = "any"
    CREATE_ONLY = "create_only"  # If-None-Match: *  (412 if the record exists)
    UPDATE_ONLY = "update_only"  # If-Match: *       (404 if it does not)


@dataclass(frozen=True)
class WhoAmI:
    """The identity the client acts as, from ``GET WhoAmI()``."""

    user_id: str
    business_unit_id: str
    organization_id: str


def _query_string(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{key}={url_quote(value, safe=_QUERY_SAFE)}" for key, value in params)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc, *exc.args]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, urllib3.exceptions.NewConnectionError):
            return True
        pending.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        pending.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return False


class _CallState:
    """What one logical call learned across its attempts."""

    def __init__(self) -> None:
        self.token_refreshed = False
        self.maybe_delivered = False


class DataverseClient:
    """A Dataverse Web API client.

    Args:
        base_url: the Web API root, e.g. ``https://org.crm.dynamics.com/api/data/v9.2/``.
        tokens: supplies bearer tokens.
        session: the `requests.Session` to use (one is created if omitted).
        timeout_secs: connect and read timeout for every HTTP call.
        max_retry_wait_secs: the most time spent waiting between retries of one call.
        caller_object_id: Entra object id to impersonate (``CallerObjectId`` header);
            the application user needs ``prvActOnBehalfOfAnotherUser``.
        sleep: called with the seconds to wait before a retry (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        timeout_secs: float = DEFAULT_TIMEOUT_SECS,
        max_retry_wait_secs: float = DEFAULT_MAX_RETRY_WAIT_SECS,
        caller_object_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an absolute http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self._origin = f"{parts.scheme}://{parts.netloc}".lower()
        self._tokens = tokens
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self.timeout_secs = timeout_secs
        self.max_retry_wait_secs = max_retry_wait_secs
        self.caller_object_id = None if caller_object_id is None else guid(caller_object_id)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DataverseClient({self.base_url!r})"

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def as_caller(self, object_id: str) -> DataverseClient:
        """A client that impersonates `object_id`, sharing this one's session and tokens."""
        return DataverseClient(
            self.base_url,
            self._tokens,
            session=self._session,
            timeout_secs=self.timeout_secs,
            max_retry_wait_secs=self.max_retry_wait_secs,
            caller_object_id=object_id,
            sleep=self._sleep,
        )

    # ----- URLs -------------------------------------------------------------------------

    def record_path(self, entity_set: str, record_id: str | uuid.UUID) -> str:
        """``contacts(<id>)``: the path of one record relative to `base_url`."""
        return f"{check_name(entity_set, 'entity set')}({guid(record_id)})"

    def record_url(self, entity_set: str, record_id: str | uuid.UUID) -> str:
        """The absolute URL of one record, as ``@odata.id`` values need it."""
        return self.base_url + self.record_path(entity_set, record_id)

    def _absolute(self, path: str) -> str:
        if "://" not in path:
            return self.base_url + path.lstrip("/")
        parts = urlsplit(path)
        # Absolute URLs come from the server (@odata.nextLink); never send the token elsewhere.
        if f"{parts.scheme}://{parts.netloc}".lower() != self._origin:
            raise DataverseError(None, "", "refusing a URL outside the environment", path)
        return path

    # ----- records ----------------------------------------------------------------------

    @overload
    def create(
        self,
        entity_set: str,
        data: Mapping[str, Any],
        *,
        return_record: Literal[False] = False,
        record_id: str | uuid.UUID | None = None,
    ) -> str: ...

    @overload
    def create(
        self,
        entity_set: str,
        data: Mapping[str, Any],
        *,
        return_record: Literal[True],
        record_id: str | uuid.UUID | None = None,
    ) -> Record: ...

    def create(
        self,
        entity_set: str,
        data: Mapping[str, Any],
        *,
        return_record: bool = False,
        record_id: str | uuid.UUID | None = None,
    ) -> str | Record:
        """Create a record; return its id, or the whole record with `return_record`.

        Without `record_id` this POSTs and reads the new id from the ``OData-EntityId``
        header. A POST whose reply is lost cannot safely be repeated (it could create a
        second record), so such a failure is raised, not retried.

        With `record_id` (a GUID the caller chose) this is a create-only upsert:
        ``PATCH entity_set(record_id)`` with ``If-None-Match: *``. Repeating it can never
        create a second record, so network failures are retried; and when a retry gets
        412 after an attempt whose reply was lost, the record is the one that attempt
        created, so the call succeeds with that id. A 412 with no earlier lost reply
        means the id was already taken and raises `PreconditionFailed`.

        Raises:
            DataverseError: any failure (see `connector.dataverse.errors`).
        """
        path = check_name(entity_set, "entity set")
        headers = {"Prefer": "return=representation"} if return_record else {}
        if record_id is None:
            response = self.request("POST", path, json_body=dict(data), headers=headers)
            new_id = record_id_from_headers(response.headers)
            if return_record:
                if response.status_code != 204 and response.content:
                    return self._json(response)
                if new_id is not None:
                    return self.retrieve(entity_set, new_id)
            if new_id is None:
                raise DataverseError(
                    response.status_code, "", "reply has no OData-EntityId header", response.url
                )
            return new_id

        rid = guid(record_id)
        headers["If-None-Match"] = "*"
        maybe_response = self._call(
            "PATCH",
            self._absolute(self.record_path(entity_set, rid)),
            body=encode_json(dict(data)),
            headers=headers,
            idempotent=True,
            exists_ok_after_lost_reply=True,
        )
        if not return_record:
            return rid
        if maybe_response is not None and maybe_response.content:
            return self._json(maybe_response)
        return self.retrieve(entity_set, rid)

    def retrieve(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        *,
        select: Sequence[str] | None = None,
        expand: str | None = None,
    ) -> Record:
        """Fetch one record. Raises `NotFound` when it does not exist."""
        params = []
        if select:
            params.append(("$select", ",".join(column(name) for name in select)))
        if expand:
            params.append(("$expand", expand))
        response = self.request("GET", self.record_path(entity_set, record_id), query=params)
        return self._json(response)

    def list(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | Sequence[str] | None = None,
        top: int | None = None,
        expand: str | None = None,
        page_size: int | None = None,
        count: bool = False,
        annotations: bool | str = False,
    ) -> Listing:
        """Query records; iterate the result to fetch pages as they are needed.

        Args:
            filter: a `$filter` built with `connector.dataverse.odata`.
            orderby: ``"createdon desc"`` or a list of such terms.
            top: at most this many records (Dataverse ignores it with `page_size`).
            page_size: records per page (``Prefer: odata.maxpagesize``); default 5000.
            count: ask for ``@odata.count``; read it from `Listing.count` after the
                first record has been taken.
            annotations: True for all (``"*"``), or an annotation pattern such as
                ``"OData.Community.Display.V1.FormattedValue"``.
        """
        return self._listing(
            check_name(entity_set, "entity set"),
            select=select,
            filter=filter,
            orderby=orderby,
            top=top,
            expand=expand,
            page_size=page_size,
            count=count,
            annotations=annotations,
        )

    def list_related(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        navigation: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | Sequence[str] | None = None,
        top: int | None = None,
        expand: str | None = None,
        page_size: int | None = None,
        count: bool = False,
        annotations: bool | str = False,
    ) -> Listing:
        """Query the records behind a collection-valued navigation property.

        E.g. ``list_related("systemusers", user_id, "systemuserroles_association",
        select=["name", "roleid"])`` gives a user's directly assigned roles. Options and
        paging are as in `list`.
        """
        path = f"{self.record_path(entity_set, record_id)}/{check_name(navigation, 'navigation')}"
        return self._listing(
            path,
            select=select,
            filter=filter,
            orderby=orderby,
            top=top,
            expand=expand,
            page_size=page_size,
            count=count,
            annotations=annotations,
        )

    def _listing(
        self,
        path: str,
        *,
        select: Sequence[str] | None,
        filter: str | None,
        orderby: str | Sequence[str] | None,
        top: int | None,
        expand: str | None,
        page_size: int | None,
        count: bool,
        annotations: bool | str,
    ) -> Listing:
        params: builtins.list[tuple[str, str]] = []
        if select:
            params.append(("$select", ",".join(column(name) for name in select)))
        if filter:
            params.append(("$filter", filter))
        if orderby:
            params.append(("$orderby", orderby if isinstance(orderby, str) else ",".join(orderby)))
        if top is not None:
            params.append(("$top", str(int(top))))
        if expand:
            params.append(("$expand", expand))
        if count:
            params.append(("$count", "true"))
        prefer = []
        if annotations:
            pattern = "*" if annotations is True else str(annotations)
            prefer.append(f'odata.include-annotations="{pattern}"')
        if page_size is not None:
            prefer.append(f"odata.maxpagesize={int(page_size)}")
        headers = {"Prefer": ",".join(prefer)} if prefer else {}
        return Listing(self, path, params, headers)

    def update(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        data: Mapping[str, Any],
        *,
        etag: str | None = None,
    ) -> None:
        """Update an existing record (never creates one).

        With `etag` (a record's ``@odata.etag``) the update only applies if nobody changed
        the record since; otherwise `PreconditionFailed` is raised. Raises `NotFound`
        when the record does not exist.
        """
        headers = {"If-Match": etag if etag else "*"}
        self.request(
            "PATCH", self.record_path(entity_set, record_id), json_body=dict(data), headers=headers
        )

    def upsert(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        data: Mapping[str, Any],
        *,
        mode: UpsertMode = UpsertMode.ANY,
    ) -> None:
        """Create the record with this id, or update it if it exists.

        `UpsertMode.CREATE_ONLY` raises `PreconditionFailed` if it exists;
        `UpsertMode.UPDATE_ONLY` raises `NotFound` if it does not.
        """
        headers = {}
        if mode is UpsertMode.CREATE_ONLY:
            headers["If-None-Match"] = "*"
        elif mode is UpsertMode.UPDATE_ONLY:
            headers["If-Match"] = "*"
        self.request(
            "PATCH", self.record_path(entity_set, record_id), json_body=dict(data), headers=headers
        )

    def delete(self, entity_set: str, record_id: str | uuid.UUID) -> None:
        """Delete a record. Raises `NotFound` when it does not exist."""
        self.request("DELETE", self.record_path(entity_set, record_id), headers={"If-Match": "*"})

    def associate(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        navigation: str,
        target_set: str,
        target_id: str | uuid.UUID,
    ) -> None:
        """Link two records through a collection-valued navigation property (``$ref``)."""
        path = (
            f"{self.record_path(entity_set, record_id)}/{check_name(navigation, 'navigation')}/$ref"
        )
        self.request("POST", path, json_body={"@odata.id": self.record_url(target_set, target_id)})

    def disassociate(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        navigation: str,
        target_id: str | uuid.UUID,
    ) -> None:
        """Remove the link to `target_id` from a collection-valued navigation property."""
        path = (
            f"{self.record_path(entity_set, record_id)}/{check_name(navigation, 'navigation')}"
            f"({guid(target_id)})/$ref"
        )
        self.request("DELETE", path)

    def who_am_i(self) -> WhoAmI:
        """The user, business unit and organization this client acts as."""
        payload = self._json(self.request("GET", "WhoAmI"))
        return WhoAmI(
            user_id=str(payload["UserId"]),
            business_unit_id=str(payload["BusinessUnitId"]),
            organization_id=str(payload["OrganizationId"]),
        )

    def batch(self) -> Batch:
        """Start a `$batch`; add operations to it, then call `Batch.execute()`."""
        from .batch import Batch

        return Batch(self)

    # ----- HTTP -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        accept: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send one request with auth, OData headers, timeouts and retries.

        Args:
            path: relative to `base_url`, or an absolute URL inside the environment.
            query: query options, encoded here (values built with `odata`).
            json_body: a JSON body; `body` sends raw bytes instead (set Content-Type).
            idempotent: whether repeating the request after a lost reply is harmless;
                defaults to False for POST and True otherwise.
            accept: marks an error-status reply as a normal one (a ``$batch`` reply
                with a failed operation is a 400 carrying a multipart body).

        Returns the successful (2xx/3xx) response. Raises `DataverseError` subclasses.
        """
        url = self._absolute(path)
        if query:
            url += ("&" if "?" in url else "?") + _query_string(query)
        if json_body is not None:
            body = encode_json(json_body)
        response = self._call(
            method,
            url,
            body=body,
            headers=dict(headers or {}),
            idempotent=method.upper() in _IDEMPOTENT_METHODS if idempotent is None else idempotent,
            accept=accept,
        )
        assert response is not None
        return response

    def _call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        idempotent: bool,
        exists_ok_after_lost_reply: bool = False,
        accept: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response | None:
        """Run the attempts of one call; None only for a tolerated 412 (see `create`)."""
        state = _CallState()

        def attempt() -> requests.Response | None:
            try:
                return self._attempt(method, url, body, headers, state, accept)
            except PreconditionFailed:
                if exists_ok_after_lost_reply and state.maybe_delivered:
                    return None
                raise
            except (ServerError, ServiceUnavailable):
                state.maybe_delivered = True
                raise
            except ConnectionFailed as exc:
                state.maybe_delivered = state.maybe_delivered or exc.maybe_delivered
                raise

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, TooManyRequests | ServiceUnavailable):
                return True
            if isinstance(exc, ConnectionFailed):
                return idempotent or not exc.maybe_delivered
            return False

        def stop(retry_state: RetryCallState) -> bool:
            if retry_state.attempt_number >= MAX_ATTEMPTS:
                return True
            return retry_state.idle_for + _wait(retry_state) > self.max_retry_wait_secs

        def before_sleep(retry_state: RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            log.warning(
                "Dataverse %s %s failed (%s); retrying in %.0f s",
                method,
                urlsplit(url).path,
                type(exc).__name__,
                _wait(retry_state),
            )

        retrying = Retrying(
            retry=retry_if_exception(should_retry),
            wait=_wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _attempt(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        state: _CallState,
        accept: Callable[[requests.Response], bool] | None,
    ) -> requests.Response:
        response = self._send(method, url, body, headers)
        if response.status_code == 401 and not state.token_refreshed:
            state.token_refreshed = True
            self._tokens.invalidate()
            response = self._send(method, url, body, headers)
        if response.status_code >= 400 and not (accept is not None and accept(response)):
            raise error_from_response(
                response.status_code,
                response.reason or "",
                response.headers,
                response.content,
                url,
            )
        return response

    def _send(
        self, method: str, url: str, body: bytes | None, extra: Mapping[str, str]
    ) -> requests.Response:
        headers = {
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }
        if method.upper() == "GET":
            headers["If-None-Match"] = "null"
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self.caller_object_id is not None:
            headers["CallerObjectId"] = self.caller_object_id
        headers.update(extra)
        headers["Authorization"] = f"Bearer {self._tokens.get_token()}"
        try:
            return self._session.request(
                method, url, data=body, headers=headers, timeout=self.timeout_secs
            )
        except requests.RequestException as exc:
            # The message names the failure type only: exception text can echo headers.
            raise ConnectionFailed(
                f"no reply from Dataverse: {type(exc).__name__}",
                url,
                maybe_delivered=not _never_sent(exc),
            ) from None

    @staticmethod
    def _json(response: requests.Response) -> Record:
        try:
            payload = response.json()
        except ValueError:
            raise DataverseError(
                response.status_code, "", "reply is not JSON", response.url
            ) from None
        if not isinstance(payload, dict):
            raise DataverseError(response.status_code, "", "reply is not an object", response.url)
        return payload


def _wait(retry_state: RetryCallState) -> float:
    """Seconds before the next attempt: Retry-After if given, else 1, 2, 4, ..."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        return float(retry_after)
    return float(2 ** (retry_state.attempt_number - 1))


class Listing(Iterator[Record]):
    """The records of a query, fetched page by page as iteration reaches them.

    `count` holds ``@odata.count`` (when `count=True` was asked) once the first page
    has been fetched.
    """

    def __init__(
        self,
        client: DataverseClient,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
    ) -> None:
        self._client = client
        self._path = path
        self._params = builtins.list(params)
        self._headers = dict(headers)
        self.count: int | None = None
        self._records = self._iterate()

    def __iter__(self) -> Listing:
        return self

    def __next__(self) -> Record:
        return next(self._records)

    def _iterate(self) -> Iterator[Record]:
        path: str | None = self._path
        query: Sequence[tuple[str, str]] | None = self._params
        while path is not None:
            response = self._client.request("GET", path, query=query, headers=self._headers)
            payload = self._client._json(response)
            if self.count is None and isinstance(payload.get("@odata.count"), int):
                self.count = payload["@odata.count"]
            yield from payload.get("value", [])
            next_link = payload.get("@odata.nextLink")
            # The next link is opaque and already carries every query option.
            path, query = (next_link, None) if isinstance(next_link, str) else (None, None)
