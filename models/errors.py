"""What the database layer raises, so callers can catch a whole family or one precise case.

ModelsError
├── DatabaseConfigError   the [database] settings cannot be used (e.g. sqlite_synchronous); a ValueError
├── NaiveDatetime         a datetime without a zone was given to a UTC column (a bug); a ValueError
└── WriterBusy            on SQLite, another writer of this process held the database too long;
                          a TimeoutError, so the raw queue answers 451 and the worker retries

Everything else comes from SQLAlchemy and the database driver as they raise it (`SQLAlchemyError`):
the callers that can do something about them (the raw queue, the worker, the elections) catch
those where they can.
"""

from __future__ import annotations


class ModelsError(Exception):
    """Base of the database layer's own failures."""


class DatabaseConfigError(ModelsError, ValueError):
    """A database setting has a value the database cannot take."""


class NaiveDatetime(ModelsError, ValueError):
    """A naive datetime reached a UTC column."""


class WriterBusy(ModelsError, TimeoutError):
    """Another writer of this process held SQLite's write lock past the busy timeout."""
