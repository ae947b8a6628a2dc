"""`DataverseClient`: records over the Dataverse Web API (OData v4).

One client holds one `requests.Session` and a `TokenProvider`, and sends every request
through the retry policy of `connector.dataverse.retry` (``Retry-After`` on 429/503,
backoff on network failures, one token refresh on 401, no repeated POST that may have
arrived). Sleeping goes through the `sleep` keyword (default `time.sleep`), so tests pass
a function that records the waits instead of waiting. Paged reads come back as a
`Listing` (`connector.dataverse.query`).

```python
client = DataverseClient("https://org.crm.dynamics.com/api/data/v9.2/", tokens)
contact_id = client.create("contacts", {"firstname": "Ann"})
for row in client.list("contacts", select=["fullname"], filter=eq("lastname", "O'Neil")):
    ...
```
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload
from urllib.parse import urlsplit

import requests

from .auth import TokenProvider
from .errors import ConnectionFailed, DataverseError
from .odata import check_name, encode_json, guid, record_id_from_headers
from .query import Listing, Record, encode_query, query_options, record_from_reply
from .retry import DEFAULT_MAX_RETRY_WAIT_SECS, request_never_sent, send_with_retries

if TYPE_CHECKING:
    from .batch import Batch

__all__ = ["DEFAULT_TIMEOUT_SECS", "DataverseClient", "HttpSession", "UpsertMode", "WhoAmI"]

# Long enough for a large page or a batch of 1000 operations, short enough that a dead
# connection does not hold a chat reply for minutes.
DEFAULT_TIMEOUT_SECS = 30.0

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


class HttpSession(Protocol):
    """What the client needs of a `requests.Session` (the embedded Dataverse's in-process
    `transport.WsgiSession` is one too)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = ...,
        headers: Mapping[str, str] | None = ...,
        timeout: float | None = ...,
    ) -> requests.Response: ...

    def close(self) -> None: ...


class UpsertMode(enum.Enum):
    """What an upsert may do: create or update, create only, or update only."""

    ANY = "any"
    CREATE_ONLY = "create_only"  # If-None-Match: *  (412 if the record exists)
    UPDATE_ONLY = "update_only"  # If-Match: *       (404 if it does not)

    def headers(self) -> dict[str, str]:
        """The conditional headers that give an upsert ``PATCH`` this mode."""
        if self is UpsertMode.CREATE_ONLY:
            return {"If-None-Match": "*"}
        if self is UpsertMode.UPDATE_ONLY:
            return {"If-Match": "*"}
        return {}


@dataclass(frozen=True)
class WhoAmI:
    """The identity the client acts as, from ``GET WhoAmI()``."""

    user_id: str
    business_unit_id: str
    organization_id: str


class DataverseClient:
    """A Dataverse Web API client.

    Args:
        base_url: the Web API root, e.g. ``https://org.crm.dynamics.com/api/data/v9.2/``.
        tokens: supplies bearer tokens.
        session: the `requests.Session` (or another `HttpSession`) to use; one is created
            if omitted.
        timeout_secs: connect and read timeout for every HTTP call.
        max_retry_wait_secs: the most time spent waiting between retries of one call.
        caller_object_id: Entra object id to impersonate (``CallerObjectId`` header);
            the application user needs ``prvActOnBehalfOfAnotherUser``.
        caller_user_id: systemuserid to impersonate (``MSCRMCallerID`` header), same need.
        sleep: called with the seconds to wait before a retry (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        session: HttpSession | None = None,
        timeout_secs: float = DEFAULT_TIMEOUT_SECS,
        max_retry_wait_secs: float = DEFAULT_MAX_RETRY_WAIT_SECS,
        caller_object_id: str | None = None,
        caller_user_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an absolute http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self._origin = f"{parts.scheme}://{parts.netloc}".lower()
        self._tokens = tokens
        self._owns_session = session is None
        self._session: HttpSession = session if session is not None else requests.Session()
        self.timeout_secs = timeout_secs
        self.max_retry_wait_secs = max_retry_wait_secs
        self.caller_object_id = None if caller_object_id is None else guid(caller_object_id)
        self.caller_user_id = None if caller_user_id is None else guid(caller_user_id)
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

    def as_user(self, user_id: str) -> DataverseClient:
        """A client that impersonates the system user `user_id` (``MSCRMCallerID``): every
        call is checked against that user's privileges, as the Web API documents
        (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/impersonate-another-user-web-api)."""
        return DataverseClient(
            self.base_url,
            self._tokens,
            session=self._session,
            timeout_secs=self.timeout_secs,
            max_retry_wait_secs=self.max_retry_wait_secs,
            caller_user_id=user_id,
            sleep=self._sleep,
        )

    # ----- URLs -------------------------------------------------------------------------

    def record_path(self, entity_set: str, record_id: str | uuid.UUID) -> str:
        """``contacts(<id>)``: the path of one record relative to `base_url`."""
        return f"{check_name(entity_set, 'entity set')}({guid(record_id)})"

    def record_url(self, entity_set: str, record_id: str | uuid.UUID) -> str:
        """The absolute URL of one record, as ``@odata.id`` values need it."""
        return self.base_url + self.record_path(entity_set, record_id)

    def _navigation_path(self, entity_set: str, record_id: str | uuid.UUID, navigation: str) -> str:
        return f"{self.record_path(entity_set, record_id)}/{check_name(navigation, 'navigation')}"

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
                    return record_from_reply(response)
                if new_id is not None:
                    return self.retrieve(entity_set, new_id)
            if new_id is None:
                raise DataverseError(
                    response.status_code, "", "reply has no OData-EntityId header", response.url
                )
            return new_id

        rid = guid(record_id)
        maybe_response = self._call(
            "PATCH",
            self._absolute(self.record_path(entity_set, rid)),
            body=encode_json(dict(data)),
            headers={**headers, **UpsertMode.CREATE_ONLY.headers()},
            idempotent=True,
            exists_ok_after_lost_reply=True,
        )
        if not return_record:
            return rid
        if maybe_response is not None and maybe_response.content:
            return record_from_reply(maybe_response)
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
        params, _ = query_options(select=select, expand=expand)
        response = self.request("GET", self.record_path(entity_set, record_id), query=params)
        return record_from_reply(response)

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
        params, headers = query_options(
            select=select,
            filter=filter,
            orderby=orderby,
            top=top,
            expand=expand,
            page_size=page_size,
            count=count,
            annotations=annotations,
        )
        return Listing(self, check_name(entity_set, "entity set"), params, headers)

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
        params, headers = query_options(
            select=select,
            filter=filter,
            orderby=orderby,
            top=top,
            expand=expand,
            page_size=page_size,
            count=count,
            annotations=annotations,
        )
        path = self._navigation_path(entity_set, record_id, navigation)
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
        self.request(
            "PATCH",
            self.record_path(entity_set, record_id),
            json_body=dict(data),
            headers=mode.headers(),
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
        path = f"{self._navigation_path(entity_set, record_id, navigation)}/$ref"
        self.request("POST", path, json_body={"@odata.id": self.record_url(target_set, target_id)})

    def disassociate(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        navigation: str,
        target_id: str | uuid.UUID,
    ) -> None:
        """Remove the link to `target_id` from a collection-valued navigation property."""
        path = f"{self._navigation_path(entity_set, record_id, navigation)}({guid(target_id)})/$ref"
        self.request("DELETE", path)

    def who_am_i(self) -> WhoAmI:
        """The user, business unit and organization this client acts as."""
        payload = record_from_reply(self.request("GET", "WhoAmI"))
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
            url += ("&" if "?" in url else "?") + encode_query(query)
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
        return send_with_retries(
            lambda: self._send(method, url, body, headers),
            method=method,
            url=url,
            idempotent=idempotent,
            refresh_token=self._tokens.invalidate,
            max_wait_secs=self.max_retry_wait_secs,
            sleep=self._sleep,
            accept=accept,
            exists_ok_after_lost_reply=exists_ok_after_lost_reply,
        )

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
        if self.caller_user_id is not None:
            headers["MSCRMCallerID"] = self.caller_user_id
        headers.update(extra)
        headers["Authorization"] = f"Bearer {self._bearer_token()}"
        try:
            return self._session.request(
                method, url, data=body, headers=headers, timeout=self.timeout_secs
            )
        except requests.RequestException as exc:
            # The message names the failure type only: exception text can echo headers.
            raise ConnectionFailed(
                f"no reply from Dataverse: {type(exc).__name__}",
                url,
                maybe_delivered=not request_never_sent(exc),
            ) from None

    def _bearer_token(self) -> str:
        try:
            return self._tokens.get_token()
        except ConnectionFailed as exc:
            # The identity provider was unreachable, so nothing went to Dataverse: even a
            # create may be sent again, and a later 412 is not the answer to our own write.
            raise ConnectionFailed(exc.message, exc.url, maybe_delivered=False) from None
