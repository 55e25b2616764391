"""Alembic environment: runs against the engine the caller passed in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import models
from models.base import Base

models.load_all()  # every table registered on Base.metadata

config = context.config
engine: Engine | None = config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through models.db.migrate(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
