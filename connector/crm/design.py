"""A widget's design: every option the widget has, with a default for each.

The designer saves the design as JSON in `crmchat_widget.crmchat_design`; the service reads
it with `parse_design` and publishes it in the widget's config (`design.model_dump()`).
Unknown keys are ignored (an older service reads a newer designer's JSON); every string
has a length limit; colours must be ``#rgb`` or ``#rrggbb`` (stored lower case); fonts
come from the fonts Windows and macOS ship with Office; the end-of-chat link must be an
absolute http(s) URL, so no ``javascript:`` or ``data:`` link can reach a visitor.

```python
design = parse_design(row["crmchat_design"])        # DesignError if it breaks the rules
design.display_name({"firstname": "Ann", "lastname": "Lee"})   # "Ann Lee"
design.check_fields({"firstname": "Ann", "email": "ann@x.test"})
```

Errors::

    DesignError (ValueError)        the design JSON is not valid (message says where)
    FieldsError (ValueError)        a visitor's pre-chat input breaks the design's rules
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.crm.attachments import DEFAULT_TYPES, MAX_ATTACHMENT_KB, check_types
from connector.crm.attachments import TYPES as ATTACHMENT_TYPES
from connector.crm.hours import OperatingHours
from connector.crm.masking import MAX_PATTERN_CHARS, MaskingError, check_pattern
from connector.crm.masking import MAX_RULES as MAX_MASKING_RULES
from connector.site_keys import MAX_URL_CHARS as MAX_KEY_URL_CHARS
from connector.site_keys import SiteKeysError, check_key_url

__all__ = [
    "FONTS",
    "MAX_FIELDS",
    "MAX_FIELD_VALUE_CHARS",
    "Colors",
    "ConfirmBox",
    "DesignError",
    "EndChat",
    "FieldsError",
    "MAX_DOMAINS",
    "Privacy",
    "InputField",
    "LANGUAGE_TEXT_KEYS",
    "MAX_LANGUAGES",
    "Proactive",
    "TicketFallback",
    "WIDGET_TEXT_KEYS",
    "WidgetDesign",
    "checked_color",
    "parse_design",
]

# docs/protocol.md, "Limits": at most 20 pre-chat fields of at most 500 characters each.
MAX_FIELDS = 20
MAX_FIELD_VALUE_CHARS = 500
MAX_DISPLAY_NAME_CHARS = 100
MAX_LINK_CHARS = 2000
MAX_DELAY_SECS = 3600
# Two minutes of nobody answering is long for a visitor; less than 10 s is a misclick.
DEFAULT_ACCEPT_TIMEOUT_SECS = 120
# An accepted chat whose visitor has gone (no tab open) is closed and written to CRM after
# this long. Five minutes outlasts a reload, a phone switching networks or a laptop lid
# closed for a moment (the visitor's resume token brings them back into the same chat),
# yet frees the agent and puts the activity in CRM while they still remember the chat;
# Omnichannel likewise closes a disconnected chat after a few minutes.
DEFAULT_INACTIVE_CLOSE_SECS = 300
MIN_INACTIVE_CLOSE_SECS = 60
MAX_INACTIVE_CLOSE_SECS = 24 * 3600
MIN_ACCEPT_TIMEOUT_SECS = 10
FALLBACK_DISPLAY_NAME = "Visitor"

# The base Microsoft fonts: installed with Windows and with Office on macOS.
Font = Literal[
    "Segoe UI",
    "Arial",
    "Calibri",
    "Cambria",
    "Candara",
    "Consolas",
    "Constantia",
    "Corbel",
    "Courier New",
    "Georgia",
    "Tahoma",
    "Times New Roman",
    "Trebuchet MS",
    "Verdana",
]
FONTS: tuple[str, ...] = get_args(Font)

_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
# Loose on purpose: the browser checked the address already; this only catches junk.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Short = Annotated[str, Field(max_length=40)]
Line = Annotated[str, Field(max_length=100)]
Text = Annotated[str, Field(max_length=1000)]

MAX_DOMAINS = 50
# A host name, optionally "*." for its subdomains: no scheme, port, path or other wildcard.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$"
DomainPattern = Annotated[
    str, Field(max_length=253, pattern=_DOMAIN), AfterValidator(lambda value: value.lower())
]


class DesignError(ValueError):
    """The design JSON breaks the rules; the message lists the first problems."""


class FieldsError(ValueError):
    """A visitor's pre-chat input breaks the design's rules; the message says which field."""


def checked_color(value: object) -> str | None:
    """The colour as stored (lower case) when it is `#rgb` or `#rrggbb`, else None."""
    if not isinstance(value, str) or _HEX_COLOR.fullmatch(value) is None:
        return None
    return value.lower()


def _hex_color(value: str) -> str:
    color = checked_color(value)
    if color is None:
        raise ValueError("a colour is #rgb or #rrggbb")
    return color


Color = Annotated[str, Field(max_length=7)]


MAX_RETENTION_DAYS = 3650


def _masking_pattern(value: str) -> str:
    try:
        return check_pattern(value)
    except MaskingError as error:
        raise ValueError(str(error)) from None


MaskingPattern = Annotated[
    str, Field(max_length=MAX_PATTERN_CHARS), AfterValidator(_masking_pattern)
]


class _Options(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class InputField(_Options):
    """One pre-chat input: `name` is the key the widget sends in `chat.start` fields."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    label: str = Field(min_length=1, max_length=100)
    type: Literal["text", "email", "tel", "textarea"] = "text"
    required: bool = False


class ConfirmBox(_Options):
    """The box that asks before a chat ends."""

    message: str = Field(default="End this chat?", min_length=1, max_length=200)
    yes: Short = Field(default="Yes", min_length=1)
    no: Short = Field(default="No", min_length=1)


class EndChat(_Options):
    """What the visitor sees after the chat: a text (title, text, note) or a link."""

    type: Literal["text", "link"] = "text"
    title: Line = "Thanks for chatting"
    text: Text = "We hope we could help. You can close this window now."
    note: Text = ""  # an optional third line of text under the text
    link: str | None = Field(default=None, max_length=MAX_LINK_CHARS)

    @field_validator("link")
    @classmethod
    def _http_link(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value):
            raise ValueError("the link may not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("the link must be an absolute http:// or https:// address")
        if "\\" in value or any(ch in value for ch in "<>\"'`"):
            raise ValueError("the link holds characters a URL may not hold")
        return value

    @model_validator(mode="after")
    def _link_when_link(self) -> EndChat:
        if self.type == "link" and self.link is None:
            raise ValueError("an end-of-chat link needs a link")
        return self


class Colors(_Options):
    """The widget's colours, as ``#rrggbb`` (or ``#rgb``)."""

    primary: Color = "#0f6cbd"  # header and buttons
    primary_text: Color = "#ffffff"  # text on primary
    background: Color = "#ffffff"
    text: Color = "#242424"
    visitor_bubble: Color = "#0f6cbd"
    visitor_text: Color = "#ffffff"
    agent_bubble: Color = "#f0f0f0"
    agent_text: Color = "#242424"

    @field_validator("*")
    @classmethod
    def _color(cls, value: str) -> str:
        return _hex_color(value)


class Proactive(_Options):
    """The invitation to chat that pops up after `delay_secs` on a page."""

    enabled: bool = False
    delay_secs: int = Field(default=30, ge=0, le=MAX_DELAY_SECS)
    message: str = Field(
        default="Hi! Have any questions? I'm here to help", min_length=1, max_length=300
    )


class TicketFallback(_Options):
    """Leave a message (a case) when nobody is available or nobody accepts in time."""

    enabled: bool = False
    accept_timeout_secs: int = Field(
        default=DEFAULT_ACCEPT_TIMEOUT_SECS, ge=MIN_ACCEPT_TIMEOUT_SECS, le=MAX_DELAY_SECS
    )
    title: Line = "Leave us a message"
    text: Text = "Nobody can answer right now. Leave a message and we will get back to you."
    button: Short = Field(default="Send message", min_length=1)


# The texts a translation may give, by key: the widget's own (DEFAULT_TEXTS in
# webresources/widget/widget.js and extras.js), then the design's texts by their path;
# "field.<name>" is a pre-chat field's label.
WIDGET_TEXT_KEYS = (
    "open", "minimize", "end", "connecting", "reconnecting", "waiting", "typing",
    "placeholder", "emoji", "ended", "rate", "star", "thanks", "newChat", "unavailable",
    "sending", "notSent", "seen", "unread", "newTitle", "slowed", "login", "topic", "chooseTopic",
    "notStarted", "badIdentity", "mismatch", "message", "ticketDone", "messageDone",
    "closeInvite",
    "transcriptDownload", "transcriptEmail", "transcriptEmailLabel", "transcriptSend",
    "transcriptSent", "transcriptFailed", "transcriptBadEmail", "transcriptTooMany",
    "attach", "fileType", "fileSize", "fileFailed", "queue", "queueWait",
)  # fmt: skip
DESIGN_TEXT_KEYS = (
    "title", "start_button", "send_button", "confirm_end.message", "confirm_end.yes",
    "confirm_end.no", "end.title", "end.text", "end.note", "proactive.message",
    "ticket_fallback.title", "ticket_fallback.text", "ticket_fallback.button",
    "operating_hours.reply_time",
)  # fmt: skip
LANGUAGE_TEXT_KEYS = WIDGET_TEXT_KEYS + DESIGN_TEXT_KEYS
# Each of the languages the EU, the UN and the large markets use, with room to spare; a
# config carries every translation, so this also bounds what a visitor downloads.
MAX_LANGUAGES = 40
MAX_TRANSLATION_CHARS = 1000
# A BCP 47 tag as browsers report it in navigator.languages ("ar", "pt-br", "zh-hant-tw"),
# stored lower case so the widget compares without case.
LanguageTag = Annotated[
    str,
    Field(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
    AfterValidator(lambda value: value.lower()),
]
TranslationKey = Annotated[
    str, Field(max_length=40, pattern=r"^([A-Za-z_.]{1,40}|field\.[a-z][a-z0-9_]{0,31})$")
]
Translation = Annotated[str, Field(min_length=1, max_length=MAX_TRANSLATION_CHARS)]


class Attachments(_Options):
    """Files in the chat, both ways (connector/crm/attachments.py has the rules)."""

    enabled: bool = True
    max_kb: int = Field(default=MAX_ATTACHMENT_KB, ge=1, le=MAX_ATTACHMENT_KB)
    types: tuple[str, ...] = Field(default=DEFAULT_TYPES, max_length=len(ATTACHMENT_TYPES))

    @field_validator("types")
    @classmethod
    def _allowed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_types(value)


class Privacy(_Options):
    """What CRM Chat keeps about visitors (connector/crm/retention.py)."""

    # Finished chats and their notes are deleted this many days after they ended; 0 keeps
    # them until someone deletes them. Ten years is the longest any retention law asks.
    retention_days: int = Field(default=0, ge=0, le=MAX_RETENTION_DAYS)
    # Keep only the network prefix of a visitor's address (connector/crm/ip_masking.py).
    mask_ip: bool = False
    # The visitor ticks a box with this text before the chat starts; the service refuses
    # `chat.start` without it and stores the text and the time with the chat.
    consent_required: bool = False
    consent_text: Text = Field(
        default="I agree that this chat and what I type in it are stored to answer my request.",
        min_length=1,
    )
    # Regular expressions (RE2) whose matches agents and the transcript see masked
    # (connector/crm/masking.py); the visitor sees what they typed.
    masking_rules: tuple[MaskingPattern, ...] = Field(default=(), max_length=MAX_MASKING_RULES)


def _default_fields() -> tuple[InputField, ...]:
    return (
        InputField(name="firstname", label="First name", type="text", required=True),
        InputField(name="lastname", label="Last name", type="text", required=False),
        InputField(name="email", label="Email", type="email", required=True),
    )


class WidgetDesign(_Options):
    """Every option of the widget; a missing option takes its default."""

    title: Line = "Chat with us"
    fields: tuple[InputField, ...] = Field(default_factory=_default_fields, max_length=MAX_FIELDS)
    display_name_template: str = Field(default="{firstname} {lastname}", max_length=200)
    start_button: Short = Field(default="Start chat", min_length=1)
    send_button: Short = Field(default="Send", min_length=1)
    show_agent_image: bool = True
    emoji: bool = True
    confirm_end: ConfirmBox = Field(default_factory=ConfirmBox)
    rating: bool = True
    sound: bool = True  # a short tone for a new message while the chat is minimized
    end: EndChat = Field(default_factory=EndChat)
    colors: Colors = Field(default_factory=Colors)
    font: Font = "Segoe UI"
    label_position: Literal["above", "left", "inside"] = "above"
    corners: Literal["rounded", "square"] = "rounded"
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    initial_state: Literal["open", "minimized", "hidden"] = "minimized"
    # Milliseconds on a page before the widget appears, as admins set it in the designer.
    delay_ms: int = Field(default=0, ge=0, le=MAX_DELAY_SECS * 1000)
    require_login: bool = False  # only visitors with a verified identity may chat
    ask_name_email: bool = True  # off: the pre-chat form is skipped, fields may be empty
    proactive: Proactive = Field(default_factory=Proactive)
    ticket_fallback: TicketFallback = Field(default_factory=TicketFallback)
    inactive_close_secs: int = Field(
        default=DEFAULT_INACTIVE_CLOSE_SECS,
        ge=MIN_INACTIVE_CLOSE_SECS,
        le=MAX_INACTIVE_CLOSE_SECS,
    )
    # The sites that may show the widget: "shop.example.com" (that host) or
    # "*.example.com" (its subdomains, not the apex). Empty: any site.
    allowed_domains: tuple[DomainPattern, ...] = Field(default=(), max_length=MAX_DOMAINS)
    # Omnichannel's "public key URL": where the site publishes the public keys its RS256
    # identity tokens are checked with (connector/site_keys.py). Empty: no RS256 tokens.
    auth_key_url: str = Field(default="", max_length=MAX_KEY_URL_CHARS)

    @field_validator("auth_key_url")
    @classmethod
    def _fetchable(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                check_key_url(value)
            except SiteKeysError as error:
                raise ValueError(str(error)) from error
        return value

    # When the widget takes chats (time zone, week, holidays) and what it shows outside
    # them (connector/crm/hours.py).
    operating_hours: OperatingHours = Field(default_factory=OperatingHours)
    privacy: Privacy = Field(default_factory=Privacy)
    attachments: Attachments = Field(default_factory=Attachments)
    # The language the design's own texts are written in; `translations` gives the texts in
    # other languages (language tag -> text key -> text), and the visitor's browser
    # language (navigator.languages) picks one; a text a translation lacks stays as written.
    language: LanguageTag = "en"
    translations: dict[LanguageTag, dict[TranslationKey, Translation]] = Field(
        default_factory=dict, max_length=MAX_LANGUAGES
    )

    @model_validator(mode="after")
    def _known_texts(self) -> WidgetDesign:
        names = {field.name for field in self.fields}
        for language, texts in self.translations.items():
            if len(texts) > len(LANGUAGE_TEXT_KEYS) + MAX_FIELDS:
                raise ValueError(f"translations.{language}: too many texts")
            for key in texts:
                known = key in LANGUAGE_TEXT_KEYS or (
                    key.startswith("field.") and key[len("field.") :] in names
                )
                if not known:
                    raise ValueError(f"translations.{language}: {key} is not a widget text")
        return self

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, value: tuple[InputField, ...]) -> tuple[InputField, ...]:
        names = [field.name for field in value]
        if len(names) != len(set(names)):
            raise ValueError("two input fields have the same name")
        return value

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a page at `origin` (the browser's Origin header) may use the widget.

        No Origin header (a same-origin request, or no browser at all) passes: the header
        only binds browsers, so this keeps other sites' pages from embedding the widget
        and is no credential.
        """
        if not self.allowed_domains or origin is None:
            return True
        host = (urlsplit(origin).hostname or "").lower()
        for pattern in self.allowed_domains:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def display_name(self, fields: Mapping[str, str]) -> str:
        """The visitor's name from the template, e.g. "Ann Lee"; "Visitor" when it is empty.

        Placeholders are ``{field name}``; unknown ones become empty. Nothing else in the
        template is interpreted (this is not `str.format`).
        """

        filled = False

        def value(match: re.Match[str]) -> str:
            nonlocal filled
            raw = fields.get(match.group(1), "")
            text = raw if isinstance(raw, str) else ""
            filled = filled or bool(text.strip())
            return text

        text = _PLACEHOLDER.sub(value, self.display_name_template)
        if not filled and _PLACEHOLDER.search(self.display_name_template):
            # "{firstname} from {company}" with nothing typed would name the visitor "from".
            return FALLBACK_DISPLAY_NAME
        text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
        name = " ".join(text.split())[:MAX_DISPLAY_NAME_CHARS].strip()
        return name or FALLBACK_DISPLAY_NAME

    def check_fields(self, values: Mapping[str, object]) -> dict[str, str]:
        """The visitor's pre-chat input, cleaned: only the design's fields, trimmed.

        Raises FieldsError when a required field is empty, a value is not text or is too
        long, or an email field holds no address. With `ask_name_email` off the form is
        not shown, so no field is required.
        """
        if len(values) > MAX_FIELDS * 2:
            raise FieldsError("too many fields")
        clean: dict[str, str] = {}
        for field in self.fields:
            raw = values.get(field.name, "")
            if not isinstance(raw, str):
                raise FieldsError(f"{field.name}: must be text")
            text = raw.strip()
            if len(text) > MAX_FIELD_VALUE_CHARS:
                raise FieldsError(f"{field.name}: at most {MAX_FIELD_VALUE_CHARS} characters")
            if not text:
                if field.required and self.ask_name_email:
                    raise FieldsError(f"{field.name}: required")
                continue
            if field.type == "email" and _EMAIL.fullmatch(text) is None:
                raise FieldsError(f"{field.name}: not an email address")
            clean[field.name] = text
        return clean


def parse_design(text: str | None) -> WidgetDesign:
    """The design stored in a widget row; the defaults when it is empty.

    Raises DesignError when the text is not a JSON object or breaks a rule.
    """
    if text is None or not text.strip():
        return WidgetDesign()
    try:
        data = json.loads(text)
    except ValueError as error:
        raise DesignError(f"the design is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise DesignError("the design must be a JSON object")
    try:
        return WidgetDesign.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'design'}: {item['msg']}"
            for item in error.errors()[:5]
        )
        raise DesignError(f"the design is not valid: {problems}") from None
