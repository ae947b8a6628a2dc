"""Service settings, read from `CRMCHAT_*` environment variables (and an optional .env file).

`config/crmchat.example.env` documents every variable. With no `CRMCHAT_DATAVERSE_URL` the
service runs on the embedded Dataverse under `CRMCHAT_DATA_DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import AfterValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.solution.paths import FILES_ROOT, REPO_ROOT

__all__ = ["REPO_ROOT", "Settings"]

# From a checkout the data folder sits in it; an installed package keeps it in the
# working directory.
DEFAULT_DATA_DIR = REPO_ROOT / "data" if FILES_ROOT == REPO_ROOT else Path("data")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def _rate_limit(value: str) -> str:
    # flask-limiter's notation, checked here so a typo stops the start, not a request.
    parse_many(value)
    return value


RateLimit = Annotated[str, Field(max_length=200), AfterValidator(_rate_limit)]


class Settings(BaseSettings):
    """Everything the service reads from its environment. Secrets are `SecretStr`."""

    model_config = SettingsConfigDict(
        env_prefix="CRMCHAT_", env_file=".env", extra="ignore", frozen=True
    )

    # A real environment: "https://<org>.crm.dynamics.com". Empty: the embedded Dataverse.
    dataverse_url: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_thumbprint: str = ""
    # Instead of Entra: a bearer token the Dataverse at CRMCHAT_DATAVERSE_URL takes as it is.
    # For the embedded Dataverse served alone (`crmchat dataverse serve`), shared by several
    # service processes: `crmchat dataverse token --user crmchat-service@crmchat.local`.
    dataverse_token: SecretStr | None = None
    # A PEM file of certificates to trust for CRMCHAT_DATAVERSE_URL (a self-signed one).
    dataverse_ca_bundle: Path | None = None

    # Where browsers reach the service, e.g. "https://chat.example.com" behind a proxy.
    # Socket URLs and the loader's address come from it, never from a request's Host.
    public_url: str = ""
    region: str = "centralus"
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    # Signs the service's own short-lived tokens; generated into data_dir when empty.
    secret_key: SecretStr | None = None
    # Behind a reverse proxy that terminates TLS: trust X-Forwarded-For / -Proto from it.
    behind_proxy: bool = False
    # Seed demo agents, widgets and contacts, and serve the demo site (embedded only).
    demo: bool = True
    # Whether the embedded Dataverse stands in for an organization with Dynamics 365 Sales
    # and Customer Service (lead, incident, knowledgearticle, and the second solution,
    # CRM Chat for Dynamics 365) or, false, for a plain Dataverse environment (core only).
    embedded_dynamics_apps: bool = True
    # Service protection on the embedded Dataverse (0 = off), as real Dataverse applies it.
    embedded_max_requests: int = Field(default=0, ge=0)
    embedded_window_secs: int = Field(default=300, ge=1)
    # Rate limits on what a visitor's browser calls without signing in, per client address
    # and per widget ("N/second|minute|hour", several joined by ";"): the widget config (a
    # page view asks once, then revalidates) and visitor socket connects.
    config_limit_per_address: RateLimit = "300/minute"
    config_limit_per_widget: RateLimit = "30000/minute"
    socket_limit_per_address: RateLimit = "300/minute"
    socket_limit_per_widget: RateLimit = "30000/minute"
    # Chats started and messages left as cases (socket frames), per address and per widget,
    # counted across processes like the above: each makes CRM records.
    chat_start_limit_per_address: RateLimit = "30/hour"
    chat_start_limit_per_widget: RateLimit = "10000/hour"
    ticket_limit_per_address: RateLimit = "10/hour"
    ticket_limit_per_widget: RateLimit = "2000/hour"
    # Messaging channels' send APIs (docs/channels.md). Empty: the platforms' own
    # (graph.facebook.com, chatapi.viber.com), or on the embedded default its simulator.
    meta_graph_url: str = ""
    viber_api_url: str = ""
    # How often each WhatsApp account's templates are synced from Meta; 0: only on
    # demand (the setup page's button).
    template_sync_minutes: int = Field(default=360, ge=0, le=7 * 24 * 60)
    # Mail for transcripts a visitor asks for (connector/mail.py). No host or no sender:
    # no mail, and the widget offers only the download.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str = Field(default="", max_length=200)
    smtp_password: SecretStr | None = None
    smtp_from: str = ""
    smtp_timeout_secs: float = Field(default=10.0, gt=0, le=120)
    # A PEM file of certificates to trust for the SMTP server (a self-signed one).
    smtp_ca_bundle: Path | None = None
    # Transcripts: downloads per client address; mails per address and per chat (each
    # mail goes to an address the visitor typed, so it is kept far below spam volume).
    transcript_limit_per_address: RateLimit = "60/minute"
    transcript_mail_limit_per_address: RateLimit = "10/hour"
    transcript_mail_limit_per_chat: RateLimit = "3/hour"

    # --- the production server (`crmchat serve`; `--dev` runs werkzeug instead) ---
    # Redis for several processes (scale-out, not built yet). Empty: one process, local state.
    redis_url: SecretStr | None = None
    # Worker processes; more than one needs CRMCHAT_REDIS_URL (each would hold its own chats).
    workers: int = Field(default=1, ge=1, le=64)
    # Threads per worker: every open websocket holds one, so this caps sockets per process.
    threads: int = Field(default=1000, ge=4, le=10_000)
    # A request head not complete after this long is dropped (a half-open request).
    header_timeout_secs: float = Field(default=10.0, gt=0, le=300)
    # Idle keep-alive HTTP connections are closed after this long.
    keepalive_secs: int = Field(default=5, ge=0, le=300)
    # On SIGTERM: sockets are told to reconnect, then requests get this long to finish.
    graceful_timeout_secs: int = Field(default=20, gt=0, le=600)
    # `/readyz` asks Dataverse at most this often (the answer is cached in between).
    readyz_dataverse_secs: float = Field(default=15.0, ge=0, le=3600)
    # "json": one JSON object per line (production); "text": readable lines (development).
    log_format: Literal["json", "text"] = "json"

    @field_validator(
        "redis_url",
        "dataverse_token",
        "dataverse_ca_bundle",
        "smtp_password",
        "smtp_ca_bundle",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `CRMCHAT_REDIS_URL=` (as in the example env file) means "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dataverse_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("https://"):
            raise ValueError("CRMCHAT_DATAVERSE_URL must start with https://")
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if value and (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError("CRMCHAT_PUBLIC_URL must be like https://chat.example.com")
        return value

    @field_validator("meta_graph_url", "viber_api_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("a channel API address must be like https://graph.facebook.com")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _mail_address(cls, value: str) -> str:
        from connector.mail import is_mail_address

        value = value.strip()
        if value and not is_mail_address(value):
            raise ValueError("CRMCHAT_SMTP_FROM must be a plain address like chat@example.com")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        from connector.regions import find_region

        if find_region(value) is None:
            raise ValueError(f"unknown region {value!r}: see config/regions.json")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def embedded(self) -> bool:
        """True when no real Dataverse is configured."""
        return not self.dataverse_url

    @property
    def embedded_db(self) -> Path:
        return self.data_dir / "dataverse.sqlite"

    @property
    def listen_url(self) -> str:
        """The address the service listens on."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The address browsers reach the service at: CRMCHAT_PUBLIC_URL, else `listen_url`."""
        return self.public_url or self.listen_url
