"""The pure part of processing a mail runs in a child process, within a time budget.

Parsing reads what a stranger wrote with code we do not control (mail-parser, the standard
library's email package, lxml): a mail may be slow to read (an expression somewhere that nobody
has found quadratic yet), may crash the reader, or may eat its memory. So the worker hands the
raw bytes to a child process and waits at most `processing_budget` seconds for the ParsedEmail.
Past the budget the child is killed and the mail is quarantined as "too slow"; a child that dies
gets the mail quarantined with how it died; either way the next mail gets a fresh child. The
worker's own process then only takes bounded, linear steps over mail text, so the SMTP listener
and the IMAP pollers, which are threads of that process, never wait for a mail's content (a
thread busy in a regular expression holds the GIL, and the others stop with it).

How a child starts is chosen each time one is needed:

* **fork**, when this process runs a single thread (`helpdesk ingest`, `helpdesk quarantine
  retry`): a copy of a process that has imported the parser already, ready in milliseconds, so
  a mail piped in by an MTA does not pay for an interpreter;
* **a fresh interpreter** (`python -m intake.isolation FD`), when other threads run (`helpdesk
  serve`): fork copies whatever locks those threads hold at that instant (logging, imports, the
  allocator), and a child may then wait for a lock nobody will release. It costs an interpreter
  start and the parser's imports once per child, and a child lives until it is killed.

`ParsePool` holds `[intake] workers` children (one per CPU by default): a claimed group's mails
are parsed side by side, each by one child within its own budget, so a stuck mail holds one child
while the others read the rest of the group. The result comes back pickled: the child is our own
code, and a child an attacker controlled could write to the database directly anyway.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from intake.config import IntakeConfig
from intake.errors import IsolatedFailure, ParseError, ParserDied, PipelineError, TooSlow
from models.mail import ParsedEmail

log = logging.getLogger("helpdesk.isolation")

# The function a child runs on each mail, as "module:function" so a fresh interpreter can import it.
PARSE = "intake.parse:parse_email"
# How long a child that is told to stop may take before it is killed.
STOP_GRACE = 2.0
# How long a new child may take to import the parser and say it is ready (not counted in a budget).
START_TIMEOUT = 60.0
READY = b"ready"


def describe(exc: BaseException) -> str:
    """The reason an admin reads in `helpdesk quarantine show`: the error and where it happened."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{exc.__class__.__name__}: {exc}{where}"


def load_target(target: str) -> Callable[[bytes, IntakeConfig], ParsedEmail]:
    module, _, name = target.partition(":")
    function: Callable[[bytes, IntakeConfig], ParsedEmail] = getattr(importlib.import_module(module), name)
    return function


class Foresight(Protocol):
    """More pure work on a parsed mail, done in the child (`foresee`) and handed back to the worker's
    process (`keep`): routing/forecast.py asks the classifier. A failure there fails no mail."""

    def warm(self) -> None: ...
    def foresee(self, mail: ParsedEmail) -> object: ...
    def keep(self, mail: ParsedEmail, foreseen: object) -> None: ...


def serve(conn: Connection, config: IntakeConfig, target: str, foresight: Foresight | None = None) -> None:
    """The child's loop: raw bytes in, ("ok", ParsedEmail, foreseen) or ("failed", kind, reason) out."""
    parse = load_target(target)
    conn.send_bytes(READY)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the worker closed its end, or is gone
            return
        reply: tuple[Any, ...]
        try:
            mail = parse(data, config)
            reply = ("ok", mail, _foresee(foresight, mail))
        except ParseError as exc:
            reply = ("failed", "parse", str(exc))
        except Exception as exc:
            reply = ("failed", "error", describe(exc))
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


def _foresee(foresight: Foresight | None, mail: ParsedEmail) -> object:
    try:
        return foresight.foresee(mail) if foresight is not None else None
    except Exception:  # the worker's process does that work itself
        return None


def _quiet_child_signals() -> None:
    # Ctrl-C reaches the whole process group: the worker decides what happens to its mail, and
    # stops its child itself. A fork also inherits the daemon's handlers, which are not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@dataclass
class _Child:
    conn: Connection
    pid: int
    popen: subprocess.Popen[bytes] | None  # None for a forked child
    how: str  # "fork" or "spawn"
    served: int = 0
    ended: int | None = None  # a forked child's exit code, once it was reaped

    def alive(self) -> bool:
        """False when the child has ended meanwhile (killed from outside while it waited)."""
        if self.popen is not None:
            return self.popen.poll() is None
        if self.ended is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.ended = os.waitstatus_to_exitcode(status)  # reaped: `reap` reads it here
        return self.ended is None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self, timeout: float) -> str:
        """Wait for the child to end; how it ended, for a quarantine reason."""
        if self.popen is not None:
            try:
                code = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                code = self.popen.wait()
        elif self.ended is not None:
            code = self.ended
        else:
            deadline = time.monotonic() + timeout
            while True:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    self.kill()
                    code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                    break
                time.sleep(0.01)
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


class ParsePool:
    """Parses raw mail in child processes, `size` of them side by side (`[intake] workers`).

    `parse_many` hands each mail to an idle child and gives back, in order, a ParsedEmail or the
    PipelineError that quarantines it: TooSlow past the budget (its child killed), ParserDied when
    the child died, ParseError or IsolatedFailure with the child's reason. A child lost to a mail
    is replaced when there is work for it, so one hostile mail takes only its own child down while
    the others go on with the rest of the group. `parse` is one mail, raising its error.
    """

    def __init__(
        self,
        config: IntakeConfig,
        *,
        target: str = PARSE,
        size: int | None = None,
        foresight: Foresight | None = None,
    ) -> None:
        self.config = config
        self.foresight = foresight
        self.budget = config.processing_budget
        self.target = target
        self.size = max(1, size if size is not None else config.parse_workers)
        self._idle: list[_Child] = []  # running children waiting for a mail
        self._lock = threading.Lock()  # one caller at a time hands out the children
        self.started = 0  # children started, for logs and tests

    # -- starting and stopping children ------------------------------------------------------

    def start(self) -> None:
        """Start every child now, so the first mails do not wait for them."""
        with self._lock:
            while len(self._idle) < self.size:
                self._idle.append(self._start_child())

    def _start_child(self) -> _Child:
        started = time.perf_counter()
        parent, child = socket.socketpair()
        try:
            alone = threading.active_count() == 1
            made = self._fork(parent, child) if alone else self._spawn(parent, child)
        finally:
            child.close()
        # Wait for the imports here, so that they never count against a mail's budget.
        try:
            ready = made.conn.poll(START_TIMEOUT) and made.conn.recv_bytes() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            made.kill()
            made.close()
            how = made.reap(STOP_GRACE)
            raise ParserDied(f"the parser process did not start ({how})")
        self.started += 1
        log.debug(
            "PARSER child %d started by %s in %.1f ms",
            made.pid,
            made.how,
            (time.perf_counter() - started) * 1000,
        )
        return made

    def _fork(self, parent: socket.socket, child: socket.socket) -> _Child:
        pid = os.fork()
        if pid == 0:  # the child: never return into the caller's code
            code = 0
            try:
                parent.close()
                _quiet_child_signals()
                serve(Connection(child.detach()), self.config, self.target, self.foresight)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        return _Child(Connection(parent.detach()), pid, None, "fork")

    def _spawn(self, parent: socket.socket, child: socket.socket) -> _Child:
        fd = child.fileno()
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        popen = subprocess.Popen(
            [sys.executable, "-m", "intake.isolation", str(fd), self.target],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
        )
        conn = Connection(parent.detach())
        made = _Child(conn, popen.pid, popen, "spawn")
        try:
            conn.send((self.config, self.foresight))  # the fresh interpreter learns its settings first
        except OSError:
            made.close()
            made.reap(STOP_GRACE)
            raise
        return made

    def close(self) -> None:
        """Stop the children: their end of the connection closes, they exit; killed if they do not."""
        with self._lock:
            children, self._idle = self._idle, []
        for child in children:
            child.close()
        for child in children:
            child.reap(STOP_GRACE)

    # -- parsing -----------------------------------------------------------------------------

    def parse(self, data: bytes) -> ParsedEmail:
        result = self.parse_many([data])[0]
        if isinstance(result, PipelineError):
            raise result
        return result

    def parse_many(self, mails: Sequence[bytes]) -> list[ParsedEmail | PipelineError]:
        """Each mail parsed by one child within the budget, side by side; results in `mails`' order."""
        results: list[ParsedEmail | PipelineError | None] = [None] * len(mails)
        waiting = list(range(len(mails)))
        busy: dict[Connection, tuple[_Child, int, float]] = {}  # child, mail, deadline
        with self._lock:
            try:
                while waiting or busy:
                    while waiting and len(busy) < self.size:
                        number = waiting.pop(0)
                        try:
                            child = self._take()
                        except (PipelineError, OSError) as exc:
                            results[number] = (
                                exc if isinstance(exc, PipelineError) else ParserDied(f"cannot start: {exc}")
                            )
                            continue
                        deadline = time.monotonic() + self.budget
                        busy[child.conn] = (child, number, deadline)
                        try:
                            child.conn.send_bytes(mails[number])
                        except OSError:  # died before it could read the mail; answered below
                            pass
                    soonest = min((deadline for _, _, deadline in busy.values()), default=0.0)
                    for ready in wait(list(busy), max(0.0, soonest - time.monotonic())):
                        child, number, _ = busy.pop(next(c for c in busy if c is ready))
                        results[number] = self._answer(child)
                    now = time.monotonic()
                    for conn, (child, number, deadline) in list(busy.items()):
                        if now >= deadline:
                            del busy[conn]
                            results[number] = self._too_slow(child, len(mails[number]))
            finally:
                for child, _, _ in busy.values():  # interrupted: children in the middle of a mail
                    child.kill()
                    child.close()
                    child.reap(STOP_GRACE)
        return [result if result is not None else ParserDied("not parsed") for result in results]

    def _take(self) -> _Child:
        """An idle child that still runs, or a new one: a child that ended while it waited (killed
        from outside) is replaced before a mail is handed to it, so no mail pays for it."""
        while self._idle:
            child = self._idle.pop()
            if child.alive():
                return child
            child.close()
            log.warning("PARSER child %d ended while idle (%s); replacing it", child.pid, child.reap(0))
        return self._start_child()

    def _answer(self, child: _Child) -> ParsedEmail | PipelineError:
        """The reply of a child that has one (or has died); a live child goes back to the idle ones."""
        try:
            reply = child.conn.recv()
        except (EOFError, OSError):
            child.close()
            how = child.reap(STOP_GRACE)
            return ParserDied(f"the parser process died on this mail ({how})")
        child.served += 1
        self._idle.append(child)
        if reply[0] == "ok":
            mail: ParsedEmail = reply[1]
            if self.foresight is not None and reply[2] is not None:
                self.foresight.keep(mail, reply[2])
            return mail
        if reply[1] == "parse":
            return ParseError(reply[2])
        return IsolatedFailure(reply[2])

    def _too_slow(self, child: _Child, size: int) -> TooSlow:
        child.kill()
        child.close()
        child.reap(STOP_GRACE)
        return TooSlow(
            f"too slow: parsing took longer than the processing budget of {self.budget:g} s "
            f"({size} bytes); the parser was stopped"
        )


def main(argv: list[str]) -> int:
    """A fresh interpreter's child: `python -m intake.isolation FD [TARGET]`."""
    _quiet_child_signals()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mailparser").setLevel(logging.ERROR)  # it warns about every defect it meets
    conn = Connection(int(argv[1]))
    try:
        config, foresight = conn.recv()
    except (EOFError, OSError):
        return 0
    if not isinstance(config, IntakeConfig):
        return 2
    if foresight is not None:
        foresight.warm()  # before READY: loading is never counted against a mail's budget
    serve(conn, config, argv[2] if len(argv) > 2 else PARSE, foresight)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
