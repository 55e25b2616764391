"""The classifier's predictions, computed ahead in the parser's processes and kept for routing.

Feature extraction and prediction are pure work on a mail's subject and text, a good part of what
the daemon spends on a new ticket. So the processes that parse a claimed group (intake/isolation.py)
also ask the active models about each mail (`foresee`), within the mail's processing budget, while
the daemon writes the previous group; the daemon keeps the answers (`keep`) and the routing engine's
model provider, wrapped by `wrap`, answers from them.

Nothing about a decision changes: an answer is used only for the very model version and the very
subject and body the engine asks about (the key), and is what that model's `predict` returned for
them in the other process, pickled exactly. Anything else (another version activated meanwhile, a
mail whose forecast failed or was never made) is a miss, and the model predicts here as before.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from models.mail import ParsedEmail
from routing.config import TARGETS
from routing.engine import ModelProvider, Predictor
from routing.facts import Prediction
from routing.model_store import ModelStore

log = logging.getLogger(__name__)

# Answers kept at once, the least recently used dropped first: several claimed groups' worth.
KEPT = 1024

# (target, model version, subject, body): what one answer is about.
Key = tuple[str, str, str, str]
# What a parser process sends back about a mail: (target, version, prediction) per active model.
Foreseen = tuple[tuple[str, str, Prediction], ...]


def routed_text(mail: ParsedEmail) -> tuple[str, str]:
    """The subject and body the routing engine sees of a mail (intake.pipeline.route)."""
    return mail.subject, mail.new_text or mail.text


class Forecast:
    """Both ends: `foresee` runs in a parser process, `keep` and the wrapped provider in the daemon."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._store: ModelStore | None = None
        self._kept: OrderedDict[Key, Prediction] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0  # answers used, for tests and benchmarks
        self.misses = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"models_dir": self.models_dir}  # what a fresh parser process needs

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["models_dir"])  # type: ignore[misc]

    # -- in a parser process -----------------------------------------------------------------

    def _models(self) -> ModelStore:
        if self._store is None:
            self._store = ModelStore(self.models_dir)
        return self._store

    def warm(self) -> None:
        """Load the active models now (a fresh process, before it says it is ready)."""
        for target in TARGETS:
            try:
                self._models().load_active(target)
            except Exception as exc:  # the daemon reports a broken model itself
                log.debug("FORECAST cannot load the %s model: %s", target, exc)

    def foresee(self, mail: ParsedEmail) -> Foreseen:
        """Each active model's answer about `mail`; a model that fails is left to the daemon."""
        subject, body = routed_text(mail)
        answers: list[tuple[str, str, Prediction]] = []
        for target in TARGETS:
            try:
                model = self._models().load_active(target)
                if model is not None:
                    answers.append((target, str(model.version), model.predict(subject, body)))
            except Exception as exc:  # asked again in the daemon, which logs why
                log.debug("FORECAST %s failed: %s", target, exc)
        return tuple(answers)

    # -- in the daemon -----------------------------------------------------------------------

    def keep(self, mail: ParsedEmail, foreseen: object) -> None:
        """Keep what a parser process foresaw about `mail`, until routing asks or it ages out."""
        if not isinstance(foreseen, tuple):
            return
        subject, body = routed_text(mail)
        with self._lock:
            for target, version, prediction in foreseen:
                self._kept[(target, version, subject, body)] = prediction
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)

    def take(self, key: Key) -> Prediction | None:
        """The answer kept for `key`; it stays kept, for another mail with the same text."""
        with self._lock:
            prediction = self._kept.get(key)
            if prediction is None:
                self.misses += 1
            else:
                self.hits += 1
                self._kept.move_to_end(key)
            return prediction

    def wrap(self, provider: ModelProvider) -> ModelProvider:
        """`provider`, whose models answer from what was foreseen when they can."""

        def models(target: str) -> Predictor | None:
            model = provider(target)
            return None if model is None else _Foreseeing(model, target, self)

        return models


class _Foreseeing:
    """A model that answers from the forecast for its own version and the same input."""

    def __init__(self, model: Predictor, target: str, forecast: Forecast) -> None:
        self._model = model
        self._target = target
        self._forecast = forecast

    @property
    def version(self) -> str:
        return self._model.version

    def predict(self, subject: str, body: str) -> Prediction:
        kept = self._forecast.take((self._target, str(self._model.version), subject, body))
        return kept if kept is not None else self._model.predict(subject, body)
