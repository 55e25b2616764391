"""The DATA of one SMTP session, held within the size limit and the listeners' shared memory budget.

A session's message grows in one buffer that takes memory from the `SessionGate` in steps; past
the size limit it stops growing while the rest is read to the final dot (and answered 552), and
when the listeners together hold `max_data_in_memory` it is refused with 452 (try again later).
"""

from __future__ import annotations

import enum

from intake.smtp_limits import SessionGate

# DATA takes memory from the shared budget in steps of this size, not for each line.
DATA_BUDGET_STEP = 256 * 1024
# While DATA flows the idle timer is reset at most this often (a timer per line would cost more
# than the line).
DATA_IDLE_RESET = 1.0
# Lines of DATA read between two turns given to the other sessions.
DATA_YIELD_LINES = 2048


class DataState(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()  # a line over RFC 5321's 1000 octets
    TOO_BIG = enum.auto()  # over max_message_size
    NO_MEMORY = enum.auto()  # the shared memory budget is spent


class BoundedData:
    """The message of one DATA command: one buffer, never longer than the limit, paid for from the
    gate's memory budget in steps; once refused it keeps nothing and returns what it took."""

    def __init__(self, gate: SessionGate, limit: int) -> None:
        self._gate = gate
        self.limit = limit
        self.state = DataState.NOMINAL
        self._held = bytearray()
        self._reserved = 0

    def add(self, line: bytes) -> None:
        if self.state is not DataState.NOMINAL:
            return
        start = 1 if line.startswith(b".") else 0  # dot-unstuffing, RFC 5321 section 4.5.2
        size = len(self._held) + len(line) - start
        if self.limit and size > self.limit:
            self.refuse(DataState.TOO_BIG)
            return
        if size > self._reserved:
            step = max(DATA_BUDGET_STEP, size - self._reserved)
            if self.limit:  # never more than the message may need
                step = min(step, self.limit - self._reserved)
            if not self._gate.hold(step):
                self.refuse(DataState.NO_MEMORY)
                return
            self._reserved += step
        self._held += memoryview(line)[start:]

    def refuse(self, state: DataState) -> None:
        if self.state is DataState.NOMINAL:
            self.state = state
        self._held = bytearray()
        self.close()

    def take(self) -> bytes:
        """The message as bytes; the buffer is let go (its budget is returned by `close`)."""
        content = bytes(self._held)
        self._held = bytearray()
        return content

    def close(self) -> None:
        if self._reserved:
            self._gate.release(self._reserved)
            self._reserved = 0
