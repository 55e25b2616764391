"""`helpdesk init`: a working desk in an empty directory, and a no-op (plus migrations) the second time."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from helpdesk.database import DatabaseUnreachable
from helpdesk.files import PRIVATE_FILE, private_directory, secure_desk
from helpdesk.settings import (
    CONFIG_NAME,
    DEFAULT_ADDRESS,
    DEFAULT_DATABASE_URL,
    DEFAULT_LISTEN,
    DEFAULT_OUTGOING_URL,
    ModelsConfig,
    Settings,
    load_settings,
)
from helpdesk.settings.reader import format_duration, format_size, toml_value
from intake.config import IntakeConfig, SmtpListenConfig
from models.db import create_db_engine, migrate
from notify.config import MailIdentity, OutgoingConfig
from routing.config import RoutingConfig
from routing.model_store import ModelStore
from routing.seed import STARTER_TARGETS

# The values are the defaults of the settings (each written once, in its package's settings
# dataclass), besides the secret and what `helpdesk init` is given; tests/settings checks both.
DEFAULT_CONFIG = """\
# Helpdesk configuration. Every key is described in deploy/helpdesk.example.toml.
# Relative paths resolve against this file's directory. Any key can be overridden from the
# environment: HELPDESK_<SECTION>_<KEY>, e.g. HELPDESK_DATABASE_URL or HELPDESK_SMTP_LISTEN.

[mail]
address = {address}          # the helpdesk's own address; its plus-addresses are ours too
name = {name}                         # display name on outgoing mail
secret = {secret}   # signs reply tokens: keep it secret, keep it stable
instance = {instance}                # recognises our own mail if it ever comes back
auto_reply_limit = {auto_reply_limit}                      # automatic mails per address per hour (loop protection)
default_language = {default_language}                   # when a mail's language cannot be told

[database]
url = {database_url}        # or postgresql+psycopg://user:pass@host/dbname

[smtp]
listen = {listen}               # the SMTP listener for mail to the helpdesk
max_message_size = {max_message_size}                 # larger mail is refused with 552
# tls_cert = "certs/smtp.crt"             # enables STARTTLS (both keys or neither)
# tls_key = "certs/smtp.key"

[outgoing]
url = {outgoing_url}               # a maildir to read, or smtp://user:pass@relay:587 / smtps://relay:465
retry_for = {retry_for}                          # keep retrying temporary failures this long

[routing]
# rules_path = "rules.toml"               # see deploy/rules.example.toml
vip_senders = {vip_senders}

[models]
dir = {models_dir}                        # trained classifier versions
"""


def default_values() -> dict[str, str]:
    """The defaults `DEFAULT_CONFIG` shows, as TOML values."""
    identity, outgoing = MailIdentity(DEFAULT_ADDRESS), OutgoingConfig()
    values: dict[str, object] = {
        "name": identity.name,
        "auto_reply_limit": outgoing.auto_reply_limit_per_hour,
        "default_language": IntakeConfig().default_language,
        "max_message_size": format_size(SmtpListenConfig().max_message_size),
        "retry_for": format_duration(outgoing.retry_for),
        "vip_senders": list(RoutingConfig().vip_senders),
        "models_dir": str(ModelsConfig.dir),
    }
    return {key: toml_value(value) for key, value in values.items()}


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    wrote_config: bool
    schema_before: str | None
    schema_after: str | None
    settings: Settings
    trained: list[str]


def write_default_config(
    path: Path,
    *,
    address: str = DEFAULT_ADDRESS,
    database_url: str = DEFAULT_DATABASE_URL,
    listen: str = DEFAULT_LISTEN,
    outgoing_url: str = DEFAULT_OUTGOING_URL,
) -> None:
    given = {
        "address": address,
        "secret": secrets.token_hex(24),
        "instance": f"helpdesk-{secrets.token_hex(4)}",
        "database_url": database_url,
        "listen": listen,
        "outgoing_url": outgoing_url,
    }
    text = DEFAULT_CONFIG.format(
        **default_values(), **{key: toml_value(value) for key, value in given.items()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of an interrupted init, whatever its mode
    # Created 0600 (it holds the token secret), not made so after its content is in it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def initialise(
    config: str | Path | None,
    *,
    address: str | None = None,
    database_url: str | None = None,
    listen: str | None = None,
    outgoing_url: str | None = None,
) -> InitResult:
    path = Path(config) if config else Path.cwd() / CONFIG_NAME
    wrote = False
    if not path.exists():
        write_default_config(
            path,
            address=address or DEFAULT_ADDRESS,
            database_url=database_url or DEFAULT_DATABASE_URL,
            listen=listen or DEFAULT_LISTEN,
            outgoing_url=outgoing_url or DEFAULT_OUTGOING_URL,
        )
        wrote = True
    settings = load_settings(path)
    if not settings.identity.secret:
        raise ValueError(f"{path}: mail.secret is empty; set it to a long random string")
    for directory in (settings.base_dir / "var", settings.models.dir):
        private_directory(directory)
    if settings.outgoing.maildir is not None:
        private_directory(settings.outgoing.maildir)
    secure_desk(settings)
    engine = create_db_engine(settings.database)
    try:
        try:
            engine.connect().close()
        except DBAPIError as exc:  # a server that is down: said in one line, not a traceback
            raise DatabaseUnreachable.of(settings, exc) from exc
        before, after = migrate(engine)
    finally:
        engine.dispose()
    return InitResult(path, wrote, before, after, settings, starter_models(settings))


def starter_models(settings: Settings) -> list[str]:
    """Train and activate the starter models from the seed tickets when no model is active yet.

    Models stored with skops before the arrays format are rewritten as arrays first, so that the
    daemon loads them without scikit-learn (see routing.skops_models)."""
    store = ModelStore(settings.models.dir)
    store.migrate_to_arrays()
    if all(store.active(target) is not None for target in STARTER_TARGETS):
        return []
    from routing.seed import train_starter_models  # imports scikit-learn: only when needed

    return train_starter_models(store)
