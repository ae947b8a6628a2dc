"""The visitor's per-chat token: proof, on `resume`, that this browser started the chat.

Signed with the service secret (itsdangerous, salt "crmchat-chat"), naming the
conversation and the visitor id; issued with `chat.started`.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["CHAT_TOKEN_MAX_AGE_SECS", "ChatTokens", "InvalidChatToken"]

# A visitor may come back to an ended chat's rating or to a long chat within a day.
CHAT_TOKEN_MAX_AGE_SECS = 24 * 60 * 60


class InvalidChatToken(Exception):
    """The token is forged, expired, or names another visitor."""


class ChatTokens:
    """Issue and check per-chat visitor tokens."""

    def __init__(self, secret: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="crmchat-chat")

    def issue(self, conversation_id: str, visitor_id: str) -> str:
        return str(self._serializer.dumps({"c": conversation_id, "v": visitor_id}))

    def verify(self, token: str, visitor_id: str) -> str:
        """The conversation id in `token`, if it was issued to `visitor_id`.

        Raises InvalidChatToken otherwise.
        """
        try:
            claims = self._serializer.loads(token, max_age=CHAT_TOKEN_MAX_AGE_SECS)
        except BadSignature as error:  # SignatureExpired is a BadSignature too
            raise InvalidChatToken("the chat token is not valid") from error
        if not isinstance(claims, dict) or claims.get("v") != visitor_id:
            raise InvalidChatToken("the chat token belongs to another visitor")
        return str(claims["c"])
