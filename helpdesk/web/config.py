"""The dashboard's and the weekly report's typed settings (`[web]`, `[report]`), each default once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOUR = 3600.0

# A sign-in link works once, within this time of being made (the 15 minutes).
LINK_LIFETIME = 15 * 60.0


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: where the dashboard listens, and how long what it hands out lasts."""

    host: str = "127.0.0.1"
    port: int = 8025
    enabled: bool = True  # `listen = ""` turns the dashboard off
    # How people reach it, for the links in sign-in mail ("" = http://HOST:PORT). Behind a TLS
    # proxy this is the proxy's https:// address, and then cookies are Secure.
    base_url: str = ""
    session_lifetime: float = 12 * HOUR
    refresh: float = 60.0  # seconds between the pages' own refreshes
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}" if self.enabled else ""

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def url(self) -> str:
        """The address links point at, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        return self.tls or self.url.startswith("https://")


@dataclass(frozen=True)
class ReportConfig:
    """`[report]`: when the weekly report is mailed to the coordinators ("" = never)."""

    schedule: str = "mon 07:00"
    timezone: str = "UTC"
    days: int = 7
