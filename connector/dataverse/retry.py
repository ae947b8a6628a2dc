"""The retry policy of `DataverseClient`: when to send a request again, and how long to wait.

- 429 and 503 (`RetryLater`) wait the server's ``Retry-After`` (whole seconds), or
  ``2^n`` seconds when it is missing; network failures back off ``1, 2, 4, ...``
  seconds. Retries stop once the total wait would pass the call's budget
  (`DEFAULT_MAX_RETRY_WAIT_SECS` unless the client says otherwise) or after
  `MAX_ATTEMPTS`, and the last error is raised.
- A network failure is retried only when repeating the request is harmless: always for
  idempotent requests (GET/PATCH/DELETE), and for a POST only when the request provably
  never left (refused connection, DNS failure, connect timeout, no token to send).
- 401 drops the cached token and sends once more with a fresh one, once per call.
- A create-only upsert (``If-None-Match: *``) that gets 412 after an earlier attempt
  whose reply was lost succeeds: the record is the one that attempt created.

`send_with_retries` runs one logical call; `request_never_sent` tells whether a
`requests` failure happened before any byte reached the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception

from .errors import (
    ConnectionFailed,
    PreconditionFailed,
    RetryLater,
    ServerError,
    ServiceUnavailable,
    error_from_response,
)

__all__ = [
    "DEFAULT_MAX_RETRY_WAIT_SECS",
    "MAX_ATTEMPTS",
    "request_never_sent",
    "send_with_retries",
]

log = logging.getLogger(__name__)

# Dataverse's own Retry-After for the request-count limit is usually well under a minute;
# a chat reply should not hang longer than that.
DEFAULT_MAX_RETRY_WAIT_SECS = 60.0
# Retry-After: 0 would never exhaust the wait budget; this bounds the attempts too.
MAX_ATTEMPTS = 10


def request_never_sent(exc: requests.RequestException) -> bool:
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


@dataclass
class _CallState:
    """What one logical call learned across its attempts."""

    token_refreshed: bool = False
    maybe_delivered: bool = False


def send_with_retries(
    send: Callable[[], requests.Response],
    *,
    method: str,
    url: str,
    idempotent: bool,
    refresh_token: Callable[[], None],
    max_wait_secs: float,
    sleep: Callable[[float], None],
    accept: Callable[[requests.Response], bool] | None = None,
    exists_ok_after_lost_reply: bool = False,
) -> requests.Response | None:
    """Run the attempts of one call and return its successful (2xx/3xx) response.

    Args:
        send: makes one HTTP exchange with a current token; raises `ConnectionFailed`
            when no reply came.
        method, url: what `send` sends, for error messages and logs.
        idempotent: whether repeating the request after a lost reply is harmless.
        refresh_token: drops the cached token (called on the first 401).
        max_wait_secs: the most time spent waiting between attempts.
        sleep: called with the seconds to wait before an attempt.
        accept: marks an error-status reply as a normal one.
        exists_ok_after_lost_reply: a 412 after a lost reply means success (see the
            module docstring); the result is then None.

    Raises:
        DataverseError: the last failure, once retrying is not allowed or not worth it.
    """
    state = _CallState()

    def attempt() -> requests.Response | None:
        try:
            return _attempt(send, url, state, refresh_token, accept)
        except PreconditionFailed:
            if exists_ok_after_lost_reply and state.maybe_delivered:
                return None
            raise
        except (ServerError, ServiceUnavailable):
            # A 5xx may come after the server acted; a 429 means it did nothing.
            state.maybe_delivered = True
            raise
        except ConnectionFailed as exc:
            state.maybe_delivered = state.maybe_delivered or exc.maybe_delivered
            raise

    def should_retry(exc: BaseException) -> bool:
        if isinstance(exc, RetryLater):
            return True
        if isinstance(exc, ConnectionFailed):
            return idempotent or not exc.maybe_delivered
        return False

    def stop(retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= MAX_ATTEMPTS:
            return True
        return retry_state.idle_for + _wait(retry_state) > max_wait_secs

    def before_sleep(retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            "Dataverse %s %s failed (%s); retrying in %.0f s",
            method,
            urlsplit(url).path,
            type(exc).__name__,
            _wait(retry_state),
        )

    # The first attempt runs without tenacity: building a `Retrying` and its call state
    # cost more than an in-process retrieve's query (bench/dataverse_vs_sqlite.py), and
    # nearly every call succeeds at once. A retryable failure then goes to tenacity as its
    # first attempt's outcome, so the waits and the limits are the same.
    try:
        return attempt()
    except BaseException as exc:
        if not should_retry(exc):
            raise
        first_failure = exc
    attempts = 0

    def replayed_attempt() -> requests.Response | None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise first_failure
        return attempt()

    retrying = Retrying(
        retry=retry_if_exception(should_retry),
        wait=_wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(replayed_attempt)


def _attempt(
    send: Callable[[], requests.Response],
    url: str,
    state: _CallState,
    refresh_token: Callable[[], None],
    accept: Callable[[requests.Response], bool] | None,
) -> requests.Response:
    response = send()
    if response.status_code == 401 and not state.token_refreshed:
        state.token_refreshed = True
        refresh_token()
        response = send()
    if response.status_code >= 400 and not (accept is not None and accept(response)):
        raise error_from_response(
            response.status_code, response.reason or "", response.headers, response.content, url
        )
    return response


def _wait(retry_state: RetryCallState) -> float:
    """Seconds before the next attempt: Retry-After if given, else 1, 2, 4, ..."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, RetryLater) and exc.retry_after is not None:
        return float(exc.retry_after)
    return float(2 ** (retry_state.attempt_number - 1))
