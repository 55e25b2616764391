"""The exceptions routing raises, so callers can catch a whole family or one precise case.

RoutingError
 ├── ModelError                  a trained model cannot be used
 │    ├── ModelNotFoundError     no such version, or no active model for a target
 │    ├── ModelLoadError         the model file is missing, unreadable or corrupt
 │    │    ├── ModelIntegrityError   its checksum differs from its metadata (tampered or truncated)
 │    │    └── UntrustedModelError   it names types outside the allow-list (could run code on load)
 │    └── ModelStoreError        the store itself: bad names, activation history, refused deletes
 ├── TrainingError               a model cannot be trained from the given examples
 ├── DatasetError                training or evaluation data cannot be read (file, columns, encoding)
 ├── RoutingConfigError          [routing] thresholds, categories or check interval unusable (config)
 ├── RulesError                  the rules cannot be used; `.problems` says each (rule_errors)
 ├── PeopleError                 the roster or a technician setting is invalid (people)
 ├── ShiftSpecError              a shift spec cannot be read (shifts)
 └── CalendarError               a holiday calendar or business time that cannot be built (calendar)

The last five are ValueErrors too, as they were before the tree had them. A bare ValueError or
TypeError left in routing is a caller's bug (a naive datetime, a test fraction outside 0..1,
lists of different lengths), never an outcome to handle; the validators of people raise
ValueError only inside their parsers, which turn it into PeopleError. The [sla] section is read
by the settings reader of the composition root, which reports its problems as settings errors.
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


class RoutingConfigError(RoutingError, ValueError):
    """The [routing] settings cannot be used: an unknown threshold target, a value out of range."""
