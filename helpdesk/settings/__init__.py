"""One typed settings object, loaded at the entry point from `helpdesk.toml` and the environment.

Where the file is: `--config PATH`, else `$HELPDESK_CONFIG`, else `helpdesk.toml` in the working
directory. Relative paths in it resolve against the file's own directory, so a desk can be moved
or started from anywhere. Any key can be overridden from the environment:

    HELPDESK_<SECTION>_<KEY>=value            e.g. HELPDESK_DATABASE_URL, HELPDESK_SMTP_MAX_MESSAGE_SIZE
    HELPDESK__<SECTION>__<KEY>[__<KEY>]=value  for nested tables, e.g. HELPDESK__ROUTING__THRESHOLDS__CATEGORY

Values are read as TOML when they parse (numbers, booleans, ["lists"]) and as text otherwise.
Every section, `[sla]` and `[[imap]]` included, is read with one grammar (reader.py) into the
typed settings of the package it configures (sections.py, sla.py, imap.py); each default is
written once, in that package's settings dataclass. The packages never read files or the
environment themselves: they get the typed parts below.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk.settings import sections, web
from helpdesk.settings.imap import mailboxes, read_mailbox, read_mailboxes
from helpdesk.settings.reader import EnvText, Reader, SettingsError, parse_duration
from helpdesk.settings.sections import (
    DEFAULT_ADDRESS,
    DEFAULT_DATABASE_URL,
    DEFAULT_LISTEN,
    DEFAULT_OUTGOING_URL,
    LoggingConfig,
    ModelsConfig,
)
from helpdesk.settings.sla import (
    CHECK_INTERVAL,
    DEFAULT_CHECK_INTERVAL,
    default_sla,
    read_sla,
    sla_duration,
    sla_policy,
)
from helpdesk.settings.urls import redact_url
from helpdesk.web.config import ReportConfig, WebConfig
from intake.authentication import SenderAuthConfig
from intake.config import IntakeConfig, LmtpListenConfig, SmtpListenConfig
from intake.imap_config import ImapMailboxConfig
from models.config import DatabaseConfig
from notify.config import LimitsConfig, MailIdentity, OutgoingConfig, TokenConfig
from routing.config import RoutingConfig
from routing.sla import SlaConfig
from tickets.loop_config import KnowledgeConfig, LifecycleConfig

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_ADDRESS",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LISTEN",
    "DEFAULT_OUTGOING_URL",
    "LoggingConfig",
    "ModelsConfig",
    "Settings",
    "SettingsError",
    "build_settings",
    "default_sla",
    "env_overrides",
    "find_config",
    "load_settings",
    "parse_duration",
    "read_mailbox",
    "read_mailboxes",
    "read_settings",
    "read_sla",
    "redact_url",
    "sla_duration",
    "unread_keys",
]

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
    "lmtp",
    "lifecycle",
    "knowledge",
    "web",
    "report",
)


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
    sla: SlaConfig = field(default_factory=default_sla)
    sla_check_interval: float = DEFAULT_CHECK_INTERVAL
    tokens: TokenConfig = field(default_factory=TokenConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sender_auth: SenderAuthConfig = field(default_factory=SenderAuthConfig)
    lmtp: LmtpListenConfig | None = None  # `[lmtp]`: the LMTP listener, off unless configured
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    web: WebConfig = field(default_factory=WebConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
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
        return EnvText(value)


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
        except UnicodeDecodeError as exc:  # TOML is UTF-8 (TOML 1.0, "Spec")
            raise SettingsError(f"{config_path}: not UTF-8 at byte {exc.start}; save it as UTF-8") from exc
        except OSError as exc:
            raise SettingsError(f"{config_path}: cannot read it: {exc.strerror or exc}") from exc
    elif required:
        raise SettingsError(f"no configuration at {config_path}; run `helpdesk init` to write one")
    table = _merge(table, env_overrides(os.environ if environ is None else environ))
    base = config_path.resolve().parent if config_path.is_file() else Path.cwd()
    return build_settings(table, base, config_path if config_path.is_file() else None)


# -- the sections --------------------------------------------------------------------------------


def read_settings(reader: Reader, table: Mapping[str, Any], path: Path | None) -> Settings:
    unknown = sorted(set(table) - set(SECTIONS))
    if unknown:
        reader.problem(f"unknown section(s) {unknown} in the configuration; known: {list(SECTIONS)}")
    mail = reader.table("mail", table.get("mail"))
    security = reader.table("security", table.get("security"))
    sla_table = reader.table("sla", table.get("sla"))
    smtp = sections.smtp_listener(reader.table("smtp", table.get("smtp")))
    return Settings(
        path=path,
        identity=sections.identity(mail),
        database=sections.database(reader.table("database", table.get("database"))),
        smtp=smtp,
        outgoing=sections.outgoing(reader.table("outgoing", table.get("outgoing")), mail),
        intake=sections.intake(reader.table("intake", table.get("intake")), mail),
        routing=sections.routing(reader.table("routing", table.get("routing"))),
        models=sections.models(reader.table("models", table.get("models"))),
        logging=sections.logging_config(reader.table("logging", table.get("logging"))),
        mailboxes=mailboxes(reader, table.get("imap", []), max_message_size=smtp.max_message_size),
        sla=sla_policy(sla_table),
        sla_check_interval=sla_table.duration(CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL),
        tokens=sections.tokens(security),
        limits=sections.limits(reader.table("limits", table.get("limits"))),
        sender_auth=sections.sender_auth(security),
        lmtp=sections.lmtp_listener(reader.table("lmtp", table.get("lmtp")), smtp),
        lifecycle=sections.lifecycle(reader.table("lifecycle", table.get("lifecycle"))),
        knowledge=sections.knowledge(reader.table("knowledge", table.get("knowledge"))),
        web=web.web(reader.table("web", table.get("web"))),
        report=web.report(reader.table("report", table.get("report"))),
        raw=dict(table),
    )


def build_settings(table: Mapping[str, Any], base: Path, path: Path | None) -> Settings:
    """The settings of a configuration table; SettingsError names every key that is wrong."""
    reader = Reader(base)
    settings = read_settings(reader, table, path)
    reader.check()
    return settings


def unread_keys(table: Mapping[str, Any], base: Path) -> list[str]:
    """The keys of a configuration table that no section reads (misspelt, or of another version)."""
    reader = Reader(base)
    read_settings(reader, table, None)
    return reader.unread()
