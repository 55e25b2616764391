"""Declarative base, naming convention and the column types every table shares.

Timestamps are stored in UTC. SQLite has no time-zone type, so `UTCDateTime` writes naive UTC
there and hands back aware datetimes everywhere: code above this layer only sees aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from models.errors import NaiveDatetime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit keys on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
BigID = BigInteger().with_variant(Integer(), "sqlite")


# A session whose `info` holds this key runs a rehearsal that is rolled back (intake.rehearsal):
# whatever would be written outside its transaction (the budgets' counts on PostgreSQL) is
# written inside it instead.
REHEARSAL = "helpdesk.rehearsal"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime column (timestamptz on PostgreSQL, naive UTC text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise NaiveDatetime("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012  (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[Any]: JSON(),
    }


@event.listens_for(Base.registry, "before_configured")
def _load_every_table(_registry: object) -> None:
    """Before the mappers are configured, every mapped module is imported (the package maps
    nothing by itself): a relationship named by string finds its class whichever module came first."""
    import models

    models.load_all()
