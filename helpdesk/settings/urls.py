"""URLs in the configuration: the database's and the relay's, read, and shown without their password."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from helpdesk.settings.reader import Table, resolve
from models.urls import DatabaseURL, parse_url
from notify.config import SmtpOutConfig

# scheme://user:password@rest: the password runs to the last "@", as one may hold an unescaped
# "@" or "/" (RFC 3986 section 3.2.1 wants them escaped; people do not always escape them).
_USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):(?P<password>.*)@(?P<tail>[^@]*)$", re.DOTALL
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*")
_SECRET_PARAM = re.compile(r"(?P<key>[?&;](?:password|passwd|pass|pwd|secret|token)=)[^&;#]*", re.IGNORECASE)
HIDDEN = "***"
MAILDIR_PREFIX = "maildir:"
# Ports of the relay when the URL names none: SMTP submission with STARTTLS, or implicit TLS.
SMTP_PORT, SMTPS_PORT = 25, 465
TLS_MODES = ("ssl", "starttls", "none")


def redact_url(url: str) -> str:
    """`url` as it may be shown in an error, a log line or `helpdesk status`: without a password.

    A URL is shown mostly when something is wrong with it, so this reads it by pattern and
    works on one that does not parse too: everything from the user name's colon to the last "@"
    counts as the password (SQLAlchemy's `render_as_string(hide_password=True)` would show the
    part of a password after an unescaped "@" or "/" as host or database), and where the
    scheme's "://" is missing, everything before the last "@" is hidden. A password in the
    query (`?password=`, as libpq takes one) is hidden as well.
    """
    if match := _USERINFO.match(url):
        shown = f"{match['head']}:{HIDDEN}@{match['tail']}"
    elif "@" in url and "://" not in url:
        scheme = _SCHEME.match(url)
        shown = f"{scheme.group() if scheme else ''}…{HIDDEN}@{url.rsplit('@', 1)[1]}"
    else:
        shown = url
    return _SECRET_PARAM.sub(rf"\g<key>{HIDDEN}", shown)


def without_password(text: str, url: str) -> str:
    """`text` (a parser's words about `url`) with the URL's password taken out."""
    match = _USERINFO.match(url)
    return text.replace(match["password"], HIDDEN) if match and match["password"] else text


def database_url(url: str, base: Path) -> str:
    """A SQLite URL with a relative file path is made absolute against the config's directory.

    Read without SQLAlchemy when the URL is plain (every command reads the settings first, and
    a piped mail or a listing must not pay for SQLAlchemy); anything else is SQLAlchemy's to read.
    """
    parts = parse_url(url)
    if parts is not None and (parts.sqlite_file is None or Path(parts.sqlite_file).is_absolute()):
        return url
    if parts is not None and parts.sqlite_file is not None and _file_only(parts):
        name = f"{parts.backend}+{parts.driver}" if parts.driver else parts.backend
        return f"{name}:///" + quote(str(resolve(base, parts.sqlite_file)), safe=" +/")
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError(
            f"is not a database URL: {redact_url(url)!r} ({without_password(str(exc), url)})"
        ) from exc
    database = parsed.database
    relative_file = database not in (None, "", ":memory:") and not Path(str(database)).is_absolute()
    if parsed.get_backend_name() == "sqlite" and database and relative_file:
        return parsed.set(database=str(resolve(base, database))).render_as_string(hide_password=False)
    return url


def _file_only(parts: DatabaseURL) -> bool:
    """A URL of a database file alone: nothing but the file to render again."""
    return not (parts.username or parts.password or parts.host or parts.port or parts.query)


@dataclass(frozen=True)
class RelaySettings:
    """The `[outgoing]` keys that go with an smtp:// or smtps:// URL."""

    password: str | None  # from password_file, read only for a relay
    timeout: float
    verify_tls: bool
    transaction_timeout: float


def relay_settings(table: Table, *, for_relay: bool) -> RelaySettings:
    default = SmtpOutConfig("", 0)
    password_file = table.path("password_file")
    password = None
    if password_file is not None and for_relay:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            table.problem("password_file", str(exc))
    return RelaySettings(
        password=password,
        timeout=table.duration("timeout", default.timeout),
        verify_tls=table.flag("verify_tls", default.verify_tls),
        transaction_timeout=table.duration("transaction_timeout", default.transaction_timeout),
    )


def relay(url: str, keys: RelaySettings) -> SmtpOutConfig:
    """The relay of `[outgoing] url = "smtp://..."` (or smtps://); ValueError says what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is not a number
        raise ValueError(f"is not a URL: {redact_url(url)!r} ({without_password(str(exc), url)})") from exc
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(
            f"must be {MAILDIR_PREFIX}PATH, smtp://host:port or smtps://host:port, not {redact_url(url)!r}"
        )
    tls = "ssl" if parts.scheme == "smtps" else (parse_qs(parts.query).get("tls", ["starttls"])[0])
    if tls not in TLS_MODES:
        raise ValueError(f"tls must be starttls or none, not {tls!r}")
    password = unquote(parts.password) if parts.password else None
    if keys.password is not None:  # password_file wins over a password in the URL
        password = keys.password
    return SmtpOutConfig(
        host=parts.hostname or "localhost",
        port=port or (SMTPS_PORT if tls == "ssl" else SMTP_PORT),
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=password,
        timeout=keys.timeout,
        verify_tls=keys.verify_tls,
        transaction_timeout=keys.transaction_timeout,
    )
