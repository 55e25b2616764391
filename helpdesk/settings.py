"""One typed settings object, loaded at the entry point from `helpdesk.toml` and the environment.

Where the file is: `--config PATH`, else `$HELPDESK_CONFIG`, else `helpdesk.toml` in the working
directory. Relative paths in it resolve against the file's own directory, so a desk can be moved
or started from anywhere. Any key can be overridden from the environment:

    HELPDESK_<SECTION>_<KEY>=value            e.g. HELPDESK_DATABASE_URL, HELPDESK_SMTP_MAX_MESSAGE_SIZE
    HELPDESK__<SECTION>__<KEY>[__<KEY>]=value  for nested tables, e.g. HELPDESK__ROUTING__THRESHOLDS__CATEGORY

Values are read as TOML when they parse (numbers, booleans, ["lists"]) and as strings otherwise.
The packages never read files or the environment themselves: they get the typed parts below.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import make_url

from intake.authentication import SenderAuthConfig
from intake.config import IntakeConfig, SessionLimits, SmtpListenConfig
from intake.errors import ImapConfigError
from intake.imap_config import ImapMailboxConfig, load_mailboxes
from models.db import DatabaseConfig
from notify.config import LimitsConfig, MailIdentity, OutgoingConfig, SmtpOutConfig, TokenConfig
from routing.config import DEFAULT_CATEGORIES, RoutingConfig
from routing.sla import SlaConfig, SlaConfigError, default_sla_config, parse_sla_config

CONFIG_NAME = "helpdesk.toml"
ENV_CONFIG = "HELPDESK_CONFIG"
ENV_PREFIX = "HELPDESK_"

SECTIONS = (
    "mail",
    "database",
    "smtp",
    "outgoing",
    "intake",
    "routing",
    "models",
    "logging",
    "sla",
    "imap",
    "limits",
    "security",
)


_INTAKE = IntakeConfig()  # the defaults of [intake], written once in intake/config.py


class SettingsError(ValueError):
    """The configuration is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    file: Path | None = None


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path = Path("var/models")


@dataclass(frozen=True)
class Settings:
    path: Path | None
    identity: MailIdentity
    database: DatabaseConfig
    smtp: SmtpListenConfig
    outgoing: OutgoingConfig
    intake: IntakeConfig
    routing: RoutingConfig
    models: ModelsConfig
    logging: LoggingConfig
    mailboxes: tuple[ImapMailboxConfig, ...] = ()
    sla: SlaConfig = field(default_factory=default_sla_config)
    sla_check_interval: float = 60.0
    tokens: TokenConfig = field(default_factory=TokenConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sender_auth: SenderAuthConfig = field(default_factory=SenderAuthConfig)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the merged table, for sections read elsewhere

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()


# -- locating and reading ----------------------------------------------------------------------


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return Path(from_env)
    return Path.cwd() / CONFIG_NAME


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The overrides the environment carries, as a nested table."""
    result: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest.startswith("_"):
            path = [part.lower() for part in rest[1:].split("__") if part]
        else:
            section, _, key = rest.partition("_")
            path = [section.lower(), key.lower()] if key else []
        if len(path) < 2 or path[0] not in SECTIONS:
            continue
        table = result
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = _parse_env_value(value)
    return result


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool = True,
) -> Settings:
    config_path = find_config(path)
    table: dict[str, Any] = {}
    if config_path.is_file():
        try:
            table = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_path}: {exc}") from exc
    elif required:
        raise SettingsError(f"no configuration at {config_path}; run `helpdesk init` to write one")
    table = _merge(table, env_overrides(os.environ if environ is None else environ))
    base = config_path.resolve().parent if config_path.is_file() else Path.cwd()
    return build_settings(table, base, config_path if config_path.is_file() else None)


# -- typed parts ---------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1024**3, "gib": 1024**3}
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Section:
    """Typed reads from one table, with errors that name the key."""

    def __init__(self, name: str, table: Any, base: Path) -> None:
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise SettingsError(f"[{name}] must be a table")
        self.name, self.table, self.base = name, table, base

    def _where(self, key: str) -> str:
        return f"{self.name}.{key}"

    def text(self, key: str, default: str) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            raise SettingsError(f"{self._where(key)} must be a string, not {value!r}")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.table.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise SettingsError(f"{self._where(key)} must be a string, not {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise SettingsError(f"{self._where(key)} must be true or false, not {value!r}")
        return value

    def whole(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingsError(f"{self._where(key)} must be a whole number >= {minimum}, not {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{self._where(key)} must be a number, not {value!r}")
        return float(value)

    def size(self, key: str, default: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        match = _SIZE.match(str(value))
        unit = (match.group(2) or "").lower() if match else ""
        if not match or unit not in _UNITS:
            raise SettingsError(
                f'{self._where(key)} must be a size like 26214400, "25MB" or "512KB", not {value!r}'
            )
        return int(float(match.group(1)) * _UNITS[unit])

    def duration(self, key: str, default: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        match = _DURATION.match(str(value))
        if not match:
            raise SettingsError(
                f'{self._where(key)} must be seconds or a duration like "30m", "2d", not {value!r}'
            )
        return float(match.group(1)) * _SECONDS[match.group(2).lower()]

    def path(self, key: str, default: str | None) -> Path | None:
        value = self.table.get(key, default)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise SettingsError(f"{self._where(key)} must be a path string, not {value!r}")
        return resolve(self.base, value)

    def str_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.table.get(key, list(default))
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{self._where(key)} must be a list of strings, not {value!r}")
        return tuple(value)


def resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path)


# scheme://user:password@rest: the password runs to the last "@", as one may hold an unescaped
# "@" or "/" (RFC 3986 section 3.2.1 wants them escaped; people do not always escape them).
_USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):(?P<password>.*)@(?P<tail>[^@]*)$", re.DOTALL
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*")
_SECRET_PARAM = re.compile(r"(?P<key>[?&;](?:password|passwd|pass|pwd|secret|token)=)[^&;#]*", re.IGNORECASE)
HIDDEN = "***"


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


def _without_password(text: str, url: str) -> str:
    """`text` (a parser's words about `url`) with the URL's password taken out."""
    match = _USERINFO.match(url)
    return text.replace(match["password"], HIDDEN) if match and match["password"] else text


def database_url(url: str, base: Path) -> str:
    """A SQLite URL with a relative file path is made absolute against the config's directory."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise SettingsError(
            f"database.url is not a database URL: {redact_url(url)!r} ({_without_password(str(exc), url)})"
        ) from exc
    database = parsed.database
    relative_file = database not in (None, "", ":memory:") and not Path(str(database)).is_absolute()
    if parsed.get_backend_name() == "sqlite" and database and relative_file:
        return parsed.set(database=str(resolve(base, database))).render_as_string(hide_password=False)
    return url


def outgoing_config(section: _Section, auto_limit: int) -> OutgoingConfig:
    url = section.text("url", "maildir:var/sent")
    common: dict[str, Any] = {
        "retry_for": section.duration("retry_for", 2 * 86400),
        "backoff_initial": section.duration("backoff_initial", 60),
        "backoff_max": section.duration("backoff_max", 3600),
        "connections": section.whole("connections", 4, 1),
        "auto_reply_limit_per_hour": auto_limit,
    }
    if url.startswith("maildir:"):
        return OutgoingConfig(maildir=resolve(section.base, url[len("maildir:") :]), **common)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is not a number
        raise SettingsError(
            f"outgoing.url is not a URL: {redact_url(url)!r} ({_without_password(str(exc), url)})"
        ) from exc
    if parts.scheme not in ("smtp", "smtps"):
        raise SettingsError(
            "outgoing.url must be maildir:PATH, smtp://host:port or smtps://host:port, "
            f"not {redact_url(url)!r}"
        )
    query = parse_qs(parts.query)
    tls = "ssl" if parts.scheme == "smtps" else (query.get("tls", ["starttls"])[0])
    if tls not in ("ssl", "starttls", "none"):
        raise SettingsError(f"outgoing.url: tls must be starttls or none, not {tls!r}")
    password = unquote(parts.password) if parts.password else None
    password_file = section.path("password_file", None)
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"outgoing.password_file: {exc}") from exc
    smtp = SmtpOutConfig(
        host=parts.hostname or "localhost",
        port=port or (465 if tls == "ssl" else 25),
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=password,
        timeout=section.duration("timeout", 30),
        verify_tls=section.flag("verify_tls", True),
        transaction_timeout=section.duration("transaction_timeout", 600),
    )
    return OutgoingConfig(smtp=smtp, **common)


def session_limits(section: _Section) -> SessionLimits:
    """The resource limits of a listener's sessions (`[smtp]`; an LMTP section would read the same keys)."""
    default = SessionLimits()

    def seconds(key: str, value: float) -> float:
        found = section.duration(key, value)
        if found <= 0:
            raise SettingsError(f"{section.name}.{key} must be more than 0 seconds, not {found!r}")
        return found

    return SessionLimits(
        max_sessions=section.whole("max_sessions", default.max_sessions, 1),
        max_sessions_per_client=section.whole("max_sessions_per_client", default.max_sessions_per_client, 1),
        max_commands=section.whole("max_commands", default.max_commands, 1),
        max_noops=section.whole("max_noops", default.max_noops, 0),
        max_errors=section.whole("max_errors", default.max_errors, 0),
        idle_timeout=seconds("idle_timeout", default.idle_timeout),
        max_session_time=seconds("max_session_time", default.max_session_time),
        tls_handshake_timeout=seconds("tls_handshake_timeout", default.tls_handshake_timeout),
        max_data_in_memory=section.size("max_data_in_memory", default.max_data_in_memory),
    )


def limits_config(section: _Section) -> LimitsConfig:
    """`[limits]`: hourly budgets on the mail the desk writes on its own."""
    default = LimitsConfig()
    return LimitsConfig(
        automatic_per_hour=section.whole("automatic_per_hour", default.automatic_per_hour),
        automatic_per_domain_per_hour=section.whole(
            "automatic_per_domain_per_hour", default.automatic_per_domain_per_hour
        ),
        authenticated_per_address_per_hour=section.whole(
            "authenticated_per_address_per_hour", default.authenticated_per_address_per_hour
        ),
        staff_notices_per_hour=section.whole("staff_notices_per_hour", default.staff_notices_per_hour, 1),
    )


def sender_auth_config(section: _Section) -> SenderAuthConfig:
    """`[security]`, sender authentication: trusted authserv-ids, our own DKIM check, staff mail."""
    default = SenderAuthConfig()
    ids = section.str_list("trusted_authserv_ids", default.trusted_authserv_ids)
    return SenderAuthConfig(
        trusted_authserv_ids=tuple(dict.fromkeys(i.strip().lower() for i in ids if i.strip())),
        verify_dkim=section.flag("verify_dkim", default.verify_dkim),
        require_authenticated_staff=section.flag(
            "require_authenticated_staff", default.require_authenticated_staff
        ),
    )


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"smtp.listen must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def build_settings(table: Mapping[str, Any], base: Path, path: Path | None) -> Settings:
    unknown = sorted(set(table) - set(SECTIONS))
    if unknown:
        raise SettingsError(f"unknown section(s) {unknown} in the configuration; known: {list(SECTIONS)}")
    mail = _Section("mail", table.get("mail"), base)
    address = mail.text("address", "support@example.test").strip()
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise SettingsError(f"mail.address must be an address like support@example.test, not {address!r}")
    identity = MailIdentity(
        address=address.lower(),
        name=mail.text("name", "Helpdesk"),
        secret=mail.text("secret", ""),
        instance=mail.text("instance", "helpdesk"),
    )
    db = _Section("database", table.get("database"), base)
    database = DatabaseConfig(
        url=database_url(db.text("url", "sqlite:///var/helpdesk.db"), base),
        sqlite_synchronous=db.text("sqlite_synchronous", "FULL"),
        sqlite_busy_timeout_ms=int(db.duration("sqlite_busy_timeout", 30) * 1000),
        pool_size=db.whole("pool_size", 5, 1),
    )
    smtp_section = _Section("smtp", table.get("smtp"), base)
    host, port = _listen(smtp_section.text("listen", "127.0.0.1:2525"))
    smtp = SmtpListenConfig(
        host=host,
        port=port,
        max_message_size=smtp_section.size("max_message_size", 25 * 1024 * 1024),
        tls_cert=smtp_section.path("tls_cert", None),
        tls_key=smtp_section.path("tls_key", None),
        require_tls=smtp_section.flag("require_tls", False),
        hostname=smtp_section.opt_str("hostname"),
        limits=session_limits(smtp_section),
    )
    if (smtp.tls_cert is None) != (smtp.tls_key is None):
        raise SettingsError("smtp.tls_cert and smtp.tls_key go together: set both or neither")
    if smtp.limits.max_data_in_memory < smtp.max_message_size:
        raise SettingsError("smtp.max_data_in_memory must be at least smtp.max_message_size")
    intake_section = _Section("intake", table.get("intake"), base)
    intake = IntakeConfig(
        max_attachment_size=intake_section.size("max_attachment_size", 10 * 1024 * 1024),
        max_attachments=intake_section.whole("max_attachments", 20),
        max_attachments_total=intake_section.size("max_attachments_total", 25 * 1024 * 1024),
        default_language=mail.text("default_language", "en"),
        worker_batch=intake_section.whole("worker_batch", 50, 1),
        claim_lease_seconds=intake_section.duration("claim_lease", 300),
        max_attempts=intake_section.whole("max_attempts", 3, 1),
        processing_budget=intake_section.duration("processing_budget", _INTAKE.processing_budget),
        max_references=intake_section.whole("max_references", _INTAKE.max_references, 1),
        max_participants=intake_section.whole("max_participants", _INTAKE.max_participants, 0),
        max_attachment_rows=intake_section.whole("max_attachment_rows", _INTAKE.max_attachment_rows, 0),
    )
    outgoing = outgoing_config(
        _Section("outgoing", table.get("outgoing"), base), mail.whole("auto_reply_limit", 5, 0)
    )
    routing_section = _Section("routing", table.get("routing"), base)
    thresholds = routing_section.table.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise SettingsError("routing.thresholds must be a table like { category = 0.6, priority = 0.6 }")
    try:
        routing = RoutingConfig(
            rules_path=routing_section.path("rules_path", None),
            builtin_rules=routing_section.flag("builtin_rules", True),
            vip_senders=routing_section.str_list("vip_senders", ()),
            thresholds=thresholds,
            categories=routing_section.str_list("categories", DEFAULT_CATEGORIES),
            rules_check_seconds=routing_section.duration("rules_check_seconds", 5),
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    imap = table.get("imap", [])
    if isinstance(imap, dict):
        imap = [imap]
    if not isinstance(imap, list):
        raise SettingsError("[[imap]] must be a list of tables, one per mailbox")
    try:
        mailboxes = load_mailboxes(imap, base_dir=base, max_message_size=smtp.max_message_size)
    except (ImapConfigError, ValueError) as exc:
        raise SettingsError(str(exc)) from exc
    sla_table = dict(table.get("sla") or {})
    sla_interval = _Section("sla", {"check_interval": sla_table.pop("check_interval", 60)}, base)
    try:
        sla = parse_sla_config(sla_table)
    except SlaConfigError as exc:
        raise SettingsError(str(exc)) from exc
    security = _Section("security", table.get("security"), base)
    tokens = TokenConfig(lifetime=security.duration("token_lifetime", TokenConfig.lifetime))
    if tokens.lifetime <= 0:
        raise SettingsError("security.token_lifetime must be longer than 0")
    models_section = _Section("models", table.get("models"), base)
    logging_section = _Section("logging", table.get("logging"), base)
    limits = limits_config(_Section("limits", table.get("limits"), base))
    sender_auth = sender_auth_config(security)
    return Settings(
        path=path,
        identity=identity,
        database=database,
        smtp=smtp,
        outgoing=outgoing,
        intake=intake,
        routing=routing,
        models=ModelsConfig(dir=models_section.path("dir", "var/models") or base / "var/models"),
        logging=LoggingConfig(
            level=logging_section.text("level", "INFO").upper(), file=logging_section.path("file", None)
        ),
        mailboxes=mailboxes,
        sla=sla,
        sla_check_interval=sla_interval.duration("check_interval", 60),
        tokens=tokens,
        limits=limits,
        sender_auth=sender_auth,
        raw=dict(table),
    )
