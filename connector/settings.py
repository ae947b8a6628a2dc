"""Service settings, read from `CRMCHAT_*` environment variables (and an optional .env file).

`config/crmchat.example.env` documents every variable. With no `CRMCHAT_DATAVERSE_URL` the
service runs on the embedded Dataverse under `CRMCHAT_DATA_DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


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

    # Where browsers reach the service, e.g. "https://chat.example.com" behind a proxy.
    # Socket URLs and the loader's address come from it, never from a request's Host.
    public_url: str = ""
    region: str = "centralus"
    data_dir: Path = REPO_ROOT / "data"
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    # Signs the service's own short-lived tokens; generated into data_dir when empty.
    secret_key: SecretStr | None = None
    # Behind a reverse proxy that terminates TLS: trust X-Forwarded-For / -Proto from it.
    behind_proxy: bool = False
    # Seed demo agents, widgets and contacts, and serve the demo site (embedded only).
    demo: bool = True
    # Service protection on the embedded Dataverse (0 = off), as real Dataverse applies it.
    embedded_max_requests: int = Field(default=0, ge=0)
    embedded_window_secs: int = Field(default=300, ge=1)

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
