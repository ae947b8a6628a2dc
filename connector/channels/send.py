"""Send clients for the Graph API (Messenger, Instagram, WhatsApp) and Viber's REST API.

One `requests.Session` each, base URLs from settings (the simulator's on the embedded
default). Failures are raised as `connector.channels.errors` (mapped by the pure
functions `meta_error` and `viber_error` from the platforms' documented codes).

Retries (tenacity) only when retrying can succeed and nothing can be sent twice: a
connection that never reached the platform, or a rate limit that names a short wait.
A timeout after the request went out is not retried: the platform may have delivered it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connector import json_input
from connector.dataverse.errors import parse_retry_after
from connector.dataverse.retry import request_never_sent

from .errors import (
    ChannelError,
    ChannelUnreachable,
    CredentialsRejected,
    InvalidRequest,
    NotSubscribed,
    OutsideWindow,
    RateLimited,
    RecipientUnavailable,
)
from .files import OutboundFile
from .model import ChannelAccount, ChannelType, WhatsAppTemplate
from .rules import ReplyMode

__all__ = [
    "GRAPH_API_VERSION",
    "MetaSendClient",
    "SentMessage",
    "ViberSendClient",
    "meta_error",
    "viber_error",
]

log = logging.getLogger(__name__)

GRAPH_API_VERSION = "v21.0"
# The WhatsApp Business Management API's template fields CRM keeps (docs/channels.md).
TEMPLATE_FIELDS = "id,name,language,status,category,parameter_format,components"
TEMPLATES_PAGE = 100
# A business account holds at most a few hundred templates (Meta caps them at 6,000 per
# WABA for verified businesses); more than this is not something an agent picks from.
TEMPLATES_MAX = 2000
REQUEST_TIMEOUT_SECS = 10.0
MAX_ATTEMPTS = 3
# A rate limit asking for longer than this is shown to the agent rather than waited out
# in a request thread.
MAX_RETRY_WAIT_SECS = 5.0

# Graph API codes (docs/channels.md for each source).
_META_RATE_LIMIT_CODES = {4, 17, 32, 613, 80006, 80007, 130429, 131056}
_META_AUTH_CODES = {102, 190}
_MESSENGER_OUTSIDE_WINDOW = (10, 2018278)
_WHATSAPP_RE_ENGAGEMENT = 131047
_META_UNAVAILABLE_CODES = {551, 131026}
# Viber send_message statuses.
_VIBER_AUTH = {2, 7, 8, 9}
_VIBER_UNAVAILABLE = {5, 11}
_VIBER_NOT_SUBSCRIBED = 6
_VIBER_TOO_MANY = 12


@dataclass(frozen=True)
class SentMessage:
    message_id: str


def _meta_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lets the app send again: Retry-After, or the minutes in
    X-Business-Use-Case-Usage's estimated_time_to_regain_access."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is not None:
        return float(retry_after)
    usage = headers.get("X-Business-Use-Case-Usage")
    if not usage:
        return None
    try:
        parsed = json_input.loads(usage)
        minutes = max(
            int(item.get("estimated_time_to_regain_access", 0))
            for items in parsed.values()
            for item in items
        )
    except (ValueError, TypeError, AttributeError):
        return None
    return float(minutes * 60) if minutes > 0 else None


def meta_error(
    channel: ChannelType, status: int, body: Any, headers: Mapping[str, str]
) -> ChannelError:
    """The error a Graph API failure means (`body` is the parsed JSON or None)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status >= 500:
            return ChannelUnreachable(channel, f"Meta answered {status}.")
        return InvalidRequest(channel, f"Meta answered {status} without an error body.")
    code = error.get("code") if isinstance(error.get("code"), int) else 0
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else 0
    message = str(error.get("message") or "")[:500]
    as_text = str(code) if not subcode else f"{code}/{subcode}"
    if (code, subcode) == _MESSENGER_OUTSIDE_WINDOW:
        return OutsideWindow(channel, message, code=as_text, mode=ReplyMode.CLOSED.value)
    if code == _WHATSAPP_RE_ENGAGEMENT:
        return OutsideWindow(channel, message, code=as_text, mode=ReplyMode.TEMPLATE_ONLY.value)
    if code in _META_RATE_LIMIT_CODES or status == 429:
        return RateLimited(channel, message, code=as_text, retry_after=_meta_wait(headers))
    if code in _META_AUTH_CODES:
        return CredentialsRejected(channel, message, code=as_text)
    if code in _META_UNAVAILABLE_CODES:
        return RecipientUnavailable(channel, message, code=as_text)
    if status >= 500:
        return ChannelUnreachable(channel, message, code=as_text)
    return InvalidRequest(channel, message, code=as_text)


def viber_error(body: Any) -> ChannelError | None:
    """The error a Viber answer means, or None for success (status 0)."""
    channel = ChannelType.VIBER
    if not isinstance(body, dict) or not isinstance(body.get("status"), int):
        return InvalidRequest(channel, "Viber's answer has no status.")
    status: int = body["status"]
    if status == 0:
        return None
    message = str(body.get("status_message") or "")[:500]
    code = str(status)
    if status == _VIBER_NOT_SUBSCRIBED:
        return NotSubscribed(channel, message, code=code)
    if status == _VIBER_TOO_MANY:
        # Viber's limit is per person and hour without a reply: no wait it could name.
        return RateLimited(channel, message, code=code)
    if status in _VIBER_AUTH:
        return CredentialsRejected(channel, message, code=code)
    if status in _VIBER_UNAVAILABLE:
        return RecipientUnavailable(channel, message, code=code)
    return InvalidRequest(channel, message, code=code)


def _worth_retrying(error: BaseException) -> bool:
    if isinstance(error, ChannelUnreachable):
        return error.never_sent
    if isinstance(error, RateLimited):
        return error.retry_after is not None and error.retry_after <= MAX_RETRY_WAIT_SECS
    return False


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return float(error.retry_after)
    return min(0.5 * 2.0 ** (state.attempt_number - 1), MAX_RETRY_WAIT_SECS)


def _with_retries(send: Callable[[], SentMessage]) -> SentMessage:
    retrying = Retrying(
        retry=retry_if_exception(_worth_retrying),
        stop=stop_after_attempt(MAX_ATTEMPTS),
        wait=_wait,
        reraise=True,
    )
    return retrying(send)


def _post(
    session: requests.Session,
    channel: ChannelType,
    url: str,
    payload: dict[str, Any] | None,
    headers: dict[str, str],
) -> requests.Response:
    """POST `payload` as JSON (None: a GET, for reads such as a test of the account)."""
    try:
        if payload is None:
            return session.get(url, headers=headers, timeout=REQUEST_TIMEOUT_SECS)
        return session.post(
            url,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json", **headers},
            timeout=REQUEST_TIMEOUT_SECS,
        )
    except requests.RequestException as error:
        raise ChannelUnreachable(
            channel, f"{channel} could not be reached.", never_sent=request_never_sent(error)
        ) from error


def _json(response: requests.Response) -> Any:
    try:
        return json_input.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


# What "test connection" reads of each account's own Graph node: a Page, an Instagram
# professional account, a WhatsApp business phone number.
_ACCOUNT_FIELDS = {
    ChannelType.MESSENGER: "id,name",
    ChannelType.INSTAGRAM: "id,username",
    ChannelType.WHATSAPP: "id,display_phone_number,verified_name",
}


class MetaSendClient:
    """Graph API send calls: POST /<version>/<page, IG or phone-number id>/messages."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        api_version: str = GRAPH_API_VERSION,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.session = session or requests.Session()

    def _send(self, account: ChannelAccount, payload: dict[str, Any]) -> SentMessage:
        if not account.channel.is_meta or account.access_token is None:
            raise CredentialsRejected(account.channel, "The account has no access token.")
        url = f"{self.base_url}/{self.api_version}/{account.platform_id}/messages"
        # The token goes in the Authorization header, never the URL (URLs get logged).
        headers = {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}

        def attempt() -> SentMessage:
            response = _post(self.session, account.channel, url, payload, headers)
            body = _json(response)
            if response.status_code != 200:
                raise meta_error(account.channel, response.status_code, body, response.headers)
            if not isinstance(body, dict):
                raise InvalidRequest(account.channel, "Meta's answer is not JSON.")
            if account.channel is ChannelType.WHATSAPP:
                messages = body.get("messages") or [{}]
                return SentMessage(str(messages[0].get("id", "")))
            return SentMessage(str(body.get("message_id", "")))

        return _with_retries(attempt)

    def check_account(self, account: ChannelAccount) -> str:
        """Read the account's own node with its token ("test connection"): its name.

        Raises CredentialsRejected (a wrong or expired token), ChannelError otherwise."""
        if not account.channel.is_meta or account.access_token is None:
            raise CredentialsRejected(account.channel, "The account has no access token.")
        fields = _ACCOUNT_FIELDS[account.channel]
        url = f"{self.base_url}/{self.api_version}/{account.platform_id}?fields={fields}"
        headers = {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}
        response = _post(self.session, account.channel, url, None, headers)
        body = _json(response)
        if response.status_code != 200:
            raise meta_error(account.channel, response.status_code, body, response.headers)
        if not isinstance(body, dict):
            raise InvalidRequest(account.channel, "Meta's answer is not JSON.")
        name = body.get("name") or body.get("username") or body.get("verified_name")
        return str(name or body.get("id") or "")

    def list_templates(self, account: ChannelAccount) -> list[dict[str, Any]]:
        """WhatsApp: the message templates of the account's WhatsApp Business Account
        (GET /<WABA id>/message_templates, the documented fields), every page.

        Raises InvalidRequest (no WABA id, more than TEMPLATES_MAX), ChannelError."""
        if account.channel is not ChannelType.WHATSAPP or account.access_token is None:
            raise CredentialsRejected(account.channel, "The account has no access token.")
        if not account.business_account_id:
            raise InvalidRequest(
                account.channel, "The account has no WhatsApp Business Account id."
            )
        base = f"{self.base_url}/{self.api_version}/{quote(account.business_account_id, safe='')}"
        headers = {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            query = {"fields": TEMPLATE_FIELDS, "limit": str(TEMPLATES_PAGE)}
            if after:
                query["after"] = after
            url = f"{base}/message_templates?{urlencode(query)}"
            response = _post(self.session, account.channel, url, None, headers)
            body = _json(response)
            if response.status_code != 200:
                raise meta_error(account.channel, response.status_code, body, response.headers)
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise InvalidRequest(account.channel, "Meta's template list has no data.")
            found += [item for item in body["data"] if isinstance(item, dict)]
            if len(found) > TEMPLATES_MAX:
                raise InvalidRequest(account.channel, f"More than {TEMPLATES_MAX} templates.")
            paging = body.get("paging")
            cursors = paging.get("cursors") if isinstance(paging, dict) else None
            has_next = isinstance(paging, dict) and bool(paging.get("next"))
            # Graph gives `next` only while there is a next page; the `after` cursor stays.
            after = (
                str(cursors.get("after") or "") if has_next and isinstance(cursors, dict) else ""
            )
            if not after:
                return found

    def person_name(self, account: ChannelAccount, person_id: str) -> str | None:
        """Messenger's User Profile API (`GET /<PSID>?fields=first_name,last_name`) or
        Instagram's (`GET /<IGSID>?fields=name,username`) with the account's token: the
        person's name, which their webhooks do not carry. None when Meta gives none (no
        profile access, an error: the chat opens with the channel's generic name)."""
        if account.channel not in (ChannelType.MESSENGER, ChannelType.INSTAGRAM):
            return None
        if account.access_token is None:
            return None
        fields = (
            "first_name,last_name" if account.channel is ChannelType.MESSENGER else "name,username"
        )
        url = f"{self.base_url}/{self.api_version}/{quote(person_id, safe='')}?fields={fields}"
        headers = {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}
        try:
            response = _post(self.session, account.channel, url, None, headers)
        except ChannelUnreachable:
            log.warning("the %s profile of a person could not be read", account.channel)
            return None
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            log.info("no %s profile name: Meta answered %s", account.channel, response.status_code)
            return None
        if account.channel is ChannelType.MESSENGER:
            parts = [str(body.get(k) or "").strip() for k in ("first_name", "last_name")]
            name = " ".join(p for p in parts if p)
        else:
            name = str(body.get("name") or body.get("username") or "").strip()
        return " ".join(name.split())[:200] or None

    def send_text(
        self, account: ChannelAccount, person_id: str, text: str, *, tag: str | None = None
    ) -> SentMessage:
        """Messenger or Instagram: a reply (RESPONSE), or with `tag` a tagged message."""
        payload: dict[str, Any] = {
            "recipient": {"id": person_id},
            "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE",
            "message": {"text": text},
        }
        if tag:
            payload["tag"] = tag
        return self._send(account, payload)

    def send_whatsapp_text(self, account: ChannelAccount, to: str, text: str) -> SentMessage:
        return self._send(
            account,
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"body": text},
            },
        )

    def send_file(
        self, account: ChannelAccount, to: str, file: OutboundFile, *, tag: str | None = None
    ) -> SentMessage:
        """A picture or file by link: Messenger/Instagram an `attachment` of type image or
        file (`payload.url`), WhatsApp an `image` or a `document` (`link`, `filename`)."""
        if account.channel is ChannelType.WHATSAPP:
            kind = "image" if file.kind == "picture" else "document"
            media: dict[str, str] = {"link": file.url}
            if kind == "document":
                media["filename"] = file.name
            return self._send(
                account,
                {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": kind,
                    kind: media,
                },
            )
        attachment = {
            "type": "image" if file.kind == "picture" else "file",
            "payload": {"url": file.url, "is_reusable": False},
        }
        payload: dict[str, Any] = {
            "recipient": {"id": to},
            "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE",
            "message": {"attachment": attachment},
        }
        if tag:
            payload["tag"] = tag
        return self._send(account, payload)

    def send_whatsapp_template(
        self, account: ChannelAccount, to: str, template: WhatsAppTemplate
    ) -> SentMessage:
        return self._send(
            account,
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": template.to_payload(),
            },
        )


class ViberSendClient:
    """Viber's POST /pa/send_message with X-Viber-Auth-Token."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()

    def check_account(self, account: ChannelAccount) -> str:
        """Viber's get_account_info with the bot's token ("test connection"): its name.

        Raises CredentialsRejected (status 2 invalidAuthToken), ChannelError otherwise."""
        if account.channel is not ChannelType.VIBER or account.auth_token is None:
            raise CredentialsRejected(ChannelType.VIBER, "The account has no auth token.")
        headers = {"X-Viber-Auth-Token": account.auth_token.get_secret_value()}
        url = f"{self.base_url}/pa/get_account_info"
        response = _post(self.session, ChannelType.VIBER, url, {}, headers)
        if response.status_code >= 500:
            status = response.status_code
            raise ChannelUnreachable(ChannelType.VIBER, f"Viber answered {status}.")
        body = _json(response)
        error = viber_error(body)
        if error is not None:
            raise error
        return str(body.get("name") or "")

    def send_text(self, account: ChannelAccount, receiver: str, text: str) -> SentMessage:
        return self._send(account, receiver, {"type": "text", "text": text})

    def send_file(self, account: ChannelAccount, receiver: str, file: OutboundFile) -> SentMessage:
        """A `picture` (`text` required, may be empty) or a `file` (`size`, `file_name`)."""
        if file.kind == "picture":
            return self._send(account, receiver, {"type": "picture", "text": "", "media": file.url})
        return self._send(
            account,
            receiver,
            {"type": "file", "media": file.url, "size": file.size, "file_name": file.name},
        )

    def _send(self, account: ChannelAccount, receiver: str, message: dict[str, Any]) -> SentMessage:
        if account.channel is not ChannelType.VIBER or account.auth_token is None:
            raise CredentialsRejected(ChannelType.VIBER, "The account has no auth token.")
        payload = {
            "receiver": receiver,
            "min_api_version": 1,
            # Viber: the sender's name is required, at most 28 characters.
            "sender": {"name": account.platform_id[:28]},
            **message,
        }
        headers = {"X-Viber-Auth-Token": account.auth_token.get_secret_value()}

        def attempt() -> SentMessage:
            response = _post(
                self.session,
                ChannelType.VIBER,
                f"{self.base_url}/pa/send_message",
                payload,
                headers,
            )
            if response.status_code >= 500:
                status = response.status_code
                raise ChannelUnreachable(ChannelType.VIBER, f"Viber answered {status}.")
            body = _json(response)
            error = viber_error(body)
            if error is not None:
                raise error
            return SentMessage(str(body.get("message_token", "")))

        return _with_retries(attempt)
