"""The sections of helpdesk.toml, each read into the typed settings of the package it configures.

Every default is the default of the package's own settings dataclass (intake/config.py,
notify/config.py, routing/config.py, ...), read here from a default instance; the few keys that
are not a field of one (the address, the URLs, the listener) have their default below, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpdesk.settings.reader import Table, parse_text, resolve
from helpdesk.settings.urls import MAILDIR_PREFIX, database_url, relay, relay_settings
from intake.authentication import SenderAuthConfig
from intake.config import IntakeConfig, LmtpListenConfig, SessionLimits, SmtpListenConfig
from models.config import DatabaseConfig
from notify.config import LimitsConfig, MailIdentity, OutgoingConfig, TokenConfig
from routing.config import DEFAULT_THRESHOLD, RoutingConfig
from tickets.loop_config import KnowledgeConfig, LifecycleConfig

DEFAULT_ADDRESS = "support@example.test"
DEFAULT_DATABASE_URL = "sqlite:///var/helpdesk.db"
DEFAULT_OUTGOING_URL = f"{MAILDIR_PREFIX}var/sent"
_SMTP = SmtpListenConfig()
DEFAULT_LISTEN = f"{_SMTP.host}:{_SMTP.port}"
MS = 1000
UNIX_PREFIX = "unix:"  # `[lmtp] listen = "unix:/run/helpdesk/lmtp.sock"`


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    file: Path | None = None


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path = Path("var/models")


def identity(mail: Table) -> MailIdentity:
    """`[mail]`: who the desk is on the wire."""
    default = MailIdentity(DEFAULT_ADDRESS)
    address = mail.text("address", default.address).strip()
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        mail.problem("address", f"must be an address like {DEFAULT_ADDRESS}, not {address!r}")
        address = default.address
    return MailIdentity(
        address=address.lower(),
        name=mail.text("name", default.name),
        secret=mail.text("secret", default.secret),
        instance=mail.text("instance", default.instance),
    )


def database(db: Table) -> DatabaseConfig:
    """`[database]`; a relative SQLite file is taken from the configuration's directory."""
    default = DatabaseConfig(DEFAULT_DATABASE_URL)
    base = db.reader.base
    return DatabaseConfig(
        url=db.get(
            "url", database_url(default.url, base), lambda value: database_url(parse_text(value), base)
        ),
        sqlite_synchronous=db.text("sqlite_synchronous", default.sqlite_synchronous),
        sqlite_busy_timeout_ms=int(
            db.duration("sqlite_busy_timeout", default.sqlite_busy_timeout_ms / MS) * MS
        ),
        pool_size=db.whole("pool_size", default.pool_size, 1),
    )


def _listen(value: Any) -> tuple[str, int]:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit():
        raise ValueError(f"must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def session_limits(smtp: Table) -> SessionLimits:
    """The resource limits of a listener's sessions (`[smtp]`; an LMTP section would read the same keys)."""
    default = SessionLimits()
    return SessionLimits(
        max_sessions=smtp.whole("max_sessions", default.max_sessions, 1),
        max_sessions_per_client=smtp.whole("max_sessions_per_client", default.max_sessions_per_client, 1),
        max_commands=smtp.whole("max_commands", default.max_commands, 1),
        max_noops=smtp.whole("max_noops", default.max_noops),
        max_errors=smtp.whole("max_errors", default.max_errors),
        idle_timeout=smtp.duration("idle_timeout", default.idle_timeout, positive=True),
        max_session_time=smtp.duration("max_session_time", default.max_session_time, positive=True),
        tls_handshake_timeout=smtp.duration(
            "tls_handshake_timeout", default.tls_handshake_timeout, positive=True
        ),
        max_data_in_memory=smtp.size("max_data_in_memory", default.max_data_in_memory),
    )


def smtp_listener(smtp: Table) -> SmtpListenConfig:
    """`[smtp]`: the listener for mail to the desk."""
    default = SmtpListenConfig()
    host, port = smtp.get("listen", (default.host, default.port), _listen)
    config = SmtpListenConfig(
        host=host,
        port=port,
        max_message_size=smtp.size("max_message_size", default.max_message_size),
        tls_cert=smtp.path("tls_cert"),
        tls_key=smtp.path("tls_key"),
        require_tls=smtp.flag("require_tls", default.require_tls),
        hostname=smtp.opt_text("hostname"),
        limits=session_limits(smtp),
    )
    if (config.tls_cert is None) != (config.tls_key is None):
        smtp.reader.problem("smtp.tls_cert and smtp.tls_key go together: set both or neither")
    if config.limits.max_data_in_memory < config.max_message_size:
        smtp.reader.problem("smtp.max_data_in_memory must be at least smtp.max_message_size")
    return config


def lmtp_listener(lmtp: Table, smtp: SmtpListenConfig) -> LmtpListenConfig | None:
    """`[lmtp]`: off unless `listen` is set, to HOST:PORT or "unix:PATH". The size and session
    limits are those of `[smtp]`: one limit for every way in."""
    where = lmtp.get("listen", None, lambda value: _lmtp_listen(value, lmtp.reader.base))
    if where is None:
        return None
    host, port, path = where
    default = LmtpListenConfig()
    return LmtpListenConfig(
        host=host or default.host,
        port=port or default.port,
        socket=path,
        max_message_size=smtp.max_message_size,
        hostname=smtp.hostname,
        limits=smtp.limits,
    )


def _lmtp_listen(value: Any, base: Path) -> tuple[str, int, Path | None] | None:
    if value == "":
        return None
    if isinstance(value, str) and value.startswith(UNIX_PREFIX):
        path = value[len(UNIX_PREFIX) :]
        if not path:
            raise ValueError(f'must be HOST:PORT or "unix:PATH", not {value!r}')
        return "", 0, resolve(base, path)
    host, port = _listen(value)
    return host, port, None


def intake(section: Table, mail: Table) -> IntakeConfig:
    """`[intake]`, and `[mail] default_language`: what the worker takes of each mail."""
    default = IntakeConfig()
    return IntakeConfig(
        max_attachment_size=section.size("max_attachment_size", default.max_attachment_size),
        max_attachments=section.whole("max_attachments", default.max_attachments),
        max_attachments_total=section.size("max_attachments_total", default.max_attachments_total),
        default_language=mail.text("default_language", default.default_language),
        worker_batch=section.whole("worker_batch", default.worker_batch, 1),
        claim_lease_seconds=section.duration("claim_lease", default.claim_lease_seconds),
        max_attempts=section.whole("max_attempts", default.max_attempts, 1),
        processing_budget=section.duration("processing_budget", default.processing_budget),
        workers=section.whole("workers", default.workers),
        max_references=section.whole("max_references", default.max_references, 1),
        max_participants=section.whole("max_participants", default.max_participants),
        max_attachment_rows=section.whole("max_attachment_rows", default.max_attachment_rows),
    )


def outgoing(section: Table, mail: Table) -> OutgoingConfig:
    """`[outgoing]`, and `[mail] auto_reply_limit`: where our mail goes, and how it is retried."""
    default = OutgoingConfig()
    common: dict[str, Any] = {
        "retry_for": section.duration("retry_for", default.retry_for),
        "backoff_initial": section.duration("backoff_initial", default.backoff_initial),
        "backoff_max": section.duration("backoff_max", default.backoff_max),
        "connections": section.whole("connections", default.connections, 1),
        "auto_reply_limit_per_hour": mail.whole("auto_reply_limit", default.auto_reply_limit_per_hour),
    }
    url = section.text("url", DEFAULT_OUTGOING_URL)
    # Read whatever the URL, so that a mistake shows before the relay is used.
    relay_keys = relay_settings(section, for_relay=not url.startswith(MAILDIR_PREFIX))
    if not url.startswith(MAILDIR_PREFIX):
        smtp = section.get("url", None, lambda value: relay(value, relay_keys))
        if smtp is not None:
            return OutgoingConfig(smtp=smtp, **common)
        url = DEFAULT_OUTGOING_URL  # the problem is recorded
    return OutgoingConfig(maildir=resolve(section.reader.base, url[len(MAILDIR_PREFIX) :]), **common)


def routing(section: Table) -> RoutingConfig:
    """`[routing]` and `[routing.thresholds]`."""
    default = RoutingConfig()
    thresholds = section.sub("thresholds")
    values = {target: thresholds.number(target, DEFAULT_THRESHOLD) for target in thresholds.values}
    try:
        return RoutingConfig(
            rules_path=section.path("rules_path"),
            builtin_rules=section.flag("builtin_rules", default.builtin_rules),
            vip_senders=section.texts("vip_senders", default.vip_senders),
            thresholds=values,
            categories=section.texts("categories", default.categories),
            rules_check_seconds=section.duration("rules_check_seconds", default.rules_check_seconds),
        )
    except ValueError as exc:
        section.reader.problem(str(exc))
        return default


def tokens(security: Table) -> TokenConfig:
    """`[security] token_lifetime`: how long a reply address made for staff is honoured."""
    return TokenConfig(lifetime=security.duration("token_lifetime", TokenConfig.lifetime, positive=True))


def sender_auth(security: Table) -> SenderAuthConfig:
    """`[security]`, sender authentication: trusted authserv-ids, our own DKIM check, staff mail."""
    default = SenderAuthConfig()
    ids = security.texts("trusted_authserv_ids", default.trusted_authserv_ids)
    return SenderAuthConfig(
        trusted_authserv_ids=tuple(dict.fromkeys(i.strip().lower() for i in ids if i.strip())),
        verify_dkim=security.flag("verify_dkim", default.verify_dkim),
        require_authenticated_staff=security.flag(
            "require_authenticated_staff", default.require_authenticated_staff
        ),
    )


def limits(section: Table) -> LimitsConfig:
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


def models(section: Table) -> ModelsConfig:
    """`[models]`: where the trained classifier versions are kept."""
    return ModelsConfig(
        dir=section.path("dir", str(ModelsConfig.dir)) or section.reader.base / ModelsConfig.dir
    )


def logging_config(section: Table) -> LoggingConfig:
    """`[logging]`."""
    return LoggingConfig(level=section.text("level", LoggingConfig.level).upper(), file=section.path("file"))


def lifecycle(section: Table) -> LifecycleConfig:
    """`[lifecycle]`: the reminder and auto-resolution of waiting tickets, the auto-close of resolved ones."""
    default = LifecycleConfig()
    return LifecycleConfig(
        waiting_reminder=section.whole("waiting_reminder", default.waiting_reminder),
        waiting_close=section.whole("waiting_close", default.waiting_close),
        resolved_close=section.whole("resolved_close", default.resolved_close),
    )


def knowledge(section: Table) -> KnowledgeConfig:
    """`[knowledge]`: which articles an acknowledgment offers, and where the exported site lives."""
    default = KnowledgeConfig()
    threshold = section.number("suggest_threshold", default.suggest_threshold)
    if not 0.0 <= threshold <= 1.0:
        section.problem("suggest_threshold", f"must be between 0 and 1, got {threshold}")
    return KnowledgeConfig(
        suggest_threshold=threshold,
        suggestions=section.whole("suggestions", default.suggestions),
        site_url=section.text("site_url", default.site_url),
    )
