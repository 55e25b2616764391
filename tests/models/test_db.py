"""Schema versions: the daemon's quick head check agrees with Alembic, and an empty database is not current."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from models.db import MIGRATIONS, DatabaseConfig, create_db_engine, head_revision, migrate, schema_is_current


def test_head_revision_agrees_with_alembic() -> None:
    assert head_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_empty_database_is_not_current_until_migrated(db_url: str) -> None:
    engine: Engine = create_db_engine(DatabaseConfig(url=db_url, sqlite_synchronous="NORMAL"))
    try:
        assert not schema_is_current(engine)
        before, after = migrate(engine)
        assert before is None
        assert after == head_revision()
        assert schema_is_current(engine)
        assert migrate(engine) == (after, after)  # safe to run twice
    finally:
        engine.dispose()
