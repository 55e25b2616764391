"""The exceptions routing raises, so callers can catch a whole family or one precise case.

RoutingError
 ├── ModelError                  a trained model cannot be used
 │    ├── ModelNotFoundError     no such version, or no active model for a target
 │    ├── ModelLoadError         the model file is missing, unreadable or corrupt
 │    │    ├── ModelIntegrityError   its checksum differs from its metadata (tampered or truncated)
 │    │    └── UntrustedModelError   it names types outside the allow-list (could run code on load)
 │    └── ModelStoreError        the store itself: bad names, activation history, refused deletes
 ├── TrainingError               a model cannot be trained from the given examples
 └── DatasetError                training or evaluation data cannot be read (file, columns, encoding)
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base class of every routing error."""


class ModelError(RoutingError):
    """A trained model cannot be used."""


class ModelNotFoundError(ModelError):
    """No such model version, or no active model for a target."""


class ModelLoadError(ModelError):
    """A model file is missing, unreadable or corrupt."""


class ModelIntegrityError(ModelLoadError):
    """A model file's checksum differs from the one recorded when it was saved."""


class UntrustedModelError(ModelLoadError):
    """A model file names types that are not on the allow-list; loading it could run code."""


class ModelStoreError(ModelError):
    """The model store refuses an operation: an invalid name, a broken history, an active model deleted."""


class TrainingError(RoutingError):
    """A model cannot be trained from the given examples (too few, a single label, ...)."""


class DatasetError(RoutingError):
    """Training or evaluation data cannot be read: missing file, unknown column, bad encoding."""
