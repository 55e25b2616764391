"""The IMAP poller: one per mailbox, it moves new mail from the server into the raw queue, exactly once.

Per connection: log in, SELECT the folder (RFC 3501), read UIDVALIDITY, find UIDs above the last
one handled (`UID SEARCH UID n:*`), fetch them in batches (`BODY.PEEK[]`, which leaves \\Seen
alone), store and commit each group of them in the raw queue, and only then flag it \\Seen or move
it (`intake.imap_client.mark_processed`). Then wait: IDLE (RFC 2177) when the server offers it,
left as soon as the server announces EXISTS, and ended every `noop_interval` to search and ask
(NOOP) with a read deadline, so a server that went silent is left within that interval (TCP
keepalive finds one that vanished); a poll every `poll_interval` otherwise.

Exactly once. The raw queue's unique keys do it: `imap:<name>:<uidvalidity>:<uid>` for the copy
on this server, and the Message-ID (or content hash) for the mail. A crash between the commit and
the flag re-fetches the mail, and storing it again is a no-op; the cursor in `mailbox_states`
moves only past mail that is stored and flagged. When UIDVALIDITY changes, the folder is read
again from UID 1 and the Message-IDs keep the mail already stored from being stored twice.

Old mail and history. The cut-off is `since` (the start of that day, UTC) when configured, else
`added_at`, the moment the helpdesk first saw the mailbox. Mail whose INTERNALDATE (the server's
delivery time) is before the cut-off is never imported, also when it is moved into the folder
later. Mail imported with an INTERNALDATE before `added_at` (only possible with a `since` in the
past) is history: it is stored with `backfill=True`, becomes a ticket, and never gets an
acknowledgment. Everything delivered after the mailbox was added is new mail.

Failures (server gone, timeouts, BYE, refused login, a database that cannot store, a server that
broke the bounds on its answers: `intake.imap_bounds`) never leave `run()`: the poller hangs up,
records the state and the server's words, waits with exponential backoff and jitter, and
connects again. Mail it could not store stays unflagged on the server, and so does mail over
`max_message_size`, which is recorded in the quarantine instead (`intake.imap_fetch`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import MailboxAuthError, MailboxError, StoreError
from intake.imap_client import (
    CONNECTION_ERRORS,
    abort_socket,
    close_quietly,
    connect,
    describe,
    ensure_folder,
    log_in,
    violation,
)
from intake.imap_config import ImapMailboxConfig
from intake.imap_fetch import Counts, Cursor, FetchReport, FolderFetcher
from intake.imap_state import MailboxStateStore, MailboxStatus, StateRecorder, mailbox_statuses
from intake.raw_queue import RawStore
from models.base import utcnow
from models.leases import backoff_delay, holder_name
from models.mailbox_state import MailboxConnState

__all__ = ["FetchReport", "MailboxPoller", "MailboxStatus", "mailbox_statuses"]

log = logging.getLogger("helpdesk.intake.imap")

# After `stop` is set, the run loop gets this long to finish cleanly; then its socket is cut.
STOP_GRACE = 1.5
# An idling poller looks at its stop event this often.
IDLE_SLICE = 1.0
# Repeated wrong passwords get accounts locked: a refused login is retried no sooner than this
# (or `backoff_max`, when that is smaller).
AUTH_RETRY_FLOOR = 30.0


class MailboxPoller:
    """Reads one mailbox into the raw queue: `run(stop)` for the daemon, `fetch_once()` for cron."""

    def __init__(
        self,
        config: ImapMailboxConfig,
        store: RawStore,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        holder: str | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._state = MailboxStateStore(sessions, config.name, clock)
        self._recorder = StateRecorder(self._state, clock)
        self._clock = clock
        self._rng = rng or random.Random()
        self._holder = holder or holder_name()
        self._stop = threading.Event()
        self._client: Any = None  # the open IMAPClient, for the stop watcher
        self._cursor: Cursor | None = None
        self._idle = False
        self._failures = 0
        self._problem: tuple[MailboxConnState, str] | None = None  # the failure last logged

    # -- the API -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, then return within about `STOP_GRACE` seconds. Never raises.

        Each run starts from the recorded state: between two runs (an election lost and won
        again) another process may have read the mailbox, and the row must name this one again.
        """
        self._stop = stop
        self._cursor = None
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(stop, finished), name=f"imap-{self.config.name}-stop", daemon=True
        )
        watcher.start()
        try:
            while not stop.is_set():
                delay = 0.0
                try:
                    self._serve(stop)
                except Exception as exc:  # every failure means: hang up, wait, try again
                    delay = self._failed(exc)
                finally:
                    self._hang_up()
                if delay and not stop.is_set():
                    stop.wait(delay)
        finally:
            finished.set()
            self._recorder.record(MailboxConnState.STOPPED, next_attempt_at=None)
            log.info("IMAP %s STOPPED", self.config.name)

    def fetch_once(self) -> FetchReport:
        """Connect, store everything new, flag or move it, hang up (for `helpdesk ingest --imap`).

        Raises MailboxAuthError, MailboxError or StoreError, after recording it, when it cannot.
        Not to be called while `run()` of the same poller is running.
        """
        self._stop = threading.Event()
        try:
            self._prepare()
            fetcher, uidnext = self._connect()
            report = fetcher.drain(self._client, uidnext)
        except Exception as exc:
            message = self._explain(exc)
            auth = isinstance(exc, MailboxAuthError)
            state = MailboxConnState.AUTH_FAILED if auth else MailboxConnState.DISCONNECTED
            self._recorder.record(state, last_error=message, last_error_at=self._clock())
            if isinstance(exc, SQLAlchemyError):
                raise StoreError(message) from exc
            if isinstance(exc, CONNECTION_ERRORS):
                raise MailboxError(message) from exc
            raise
        finally:
            self._hang_up()
        self._recorder.record(MailboxConnState.DISCONNECTED, last_success_at=self._clock(), failures=0)
        return report

    # -- one connection ------------------------------------------------------------------------

    def _serve(self, stop: threading.Event) -> None:
        """One connection: catch up, then wait for mail and fetch it, until stop or a failure."""
        if self._cursor is None:
            self._prepare()
        fetcher, uidnext = self._connect()
        client = self._client
        fetcher.drain(client, uidnext)
        while not stop.is_set():
            self._succeeded()
            if self._idle:
                self._wait_idle(client, stop, fetcher)
            else:
                stop.wait(self.config.poll_interval)
            if stop.is_set():
                break
            fetcher.drain(client, None)

    def _prepare(self) -> None:
        """Load the cursor and `added_at` (recording the mailbox on first sight)."""
        config = self.config
        status = self._state.load(
            server=config.address, user=config.user, folder=config.folder, holder=self._holder
        )
        self._cursor = Cursor(
            uidvalidity=status.uidvalidity, last_uid=status.last_uid, added_at=status.added_at
        )
        self._recorder.recorded = status.state

    def _connect(self) -> tuple[FolderFetcher, int | None]:
        """Log in and SELECT; returns a fetcher for the folder and its UIDNEXT (RFC 3501 6.3.1)."""
        config, cursor = self.config, self._cursor
        assert cursor is not None
        if self._problem is None:  # during a failure streak, keep the failure visible in the state
            self._recorder.record(MailboxConnState.CONNECTING)
        client = connect(config)
        self._client = client  # from now on, the stop watcher can cut it
        log_in(client, config)
        self._idle = config.use_idle and bool(client.has_capability("IDLE"))
        try:
            selected = client.select_folder(config.folder)
        except CONNECTION_ERRORS as exc:
            raise MailboxError(f"cannot select folder {config.folder!r}: {describe(exc)}") from exc
        uidvalidity = int(selected[b"UIDVALIDITY"])
        uidnext = selected.get(b"UIDNEXT")
        if cursor.uidvalidity is not None and uidvalidity != cursor.uidvalidity:
            # RFC 3501 section 2.3.1.1: the old UIDs mean nothing now. Read everything again;
            # the raw queue recognises the mail it already has by Message-ID.
            log.warning(
                "IMAP %s UIDVALIDITY CHANGED %d -> %d: re-reading %s from uid 1",
                config.name,
                cursor.uidvalidity,
                uidvalidity,
                config.folder,
            )
            cursor.last_uid = 0
        cursor.uidvalidity = uidvalidity
        if config.move_to is not None:
            ensure_folder(client, config.move_to)
        self._recorder.record(
            None,
            uidvalidity=uidvalidity,
            last_uid=cursor.last_uid,
            idle_supported=self._idle,
            last_connected_at=self._clock(),
        )
        log.log(
            logging.INFO if self._problem is None else logging.DEBUG,
            "IMAP %s CONNECTED %s uidvalidity=%d idle=%s last_uid=%d",
            config.name,
            config.address,
            uidvalidity,
            "yes" if self._idle else "no",
            cursor.last_uid,
        )
        fetcher = FolderFetcher(config, self._store, cursor, self._stop, self._advanced)
        return fetcher, int(uidnext) if uidnext is not None else None

    def _advanced(self, counts: Counts) -> None:
        assert self._cursor is not None
        self._recorder.advance(
            self._cursor.last_uid, counts.stored, counts.duplicates, counts.backfilled, counts.skipped
        )

    def _wait_idle(self, client: Any, stop: threading.Event, fetcher: FolderFetcher) -> None:
        """IDLE until the server announces mail, `noop_interval` passes, or `stop` (RFC 2177).

        A server that dies or hangs while we idle says nothing, and neither does a middlebox that
        dropped the connection: TCP keepalive finds a vanished peer, and ending IDLE every
        `noop_interval` (DONE, then a SEARCH and a NOOP, each with a read deadline) finds a silent
        one, after which the poller reconnects.
        """
        # Mail that arrived since our last command is announced at the end of the next command,
        # and not by the IDLE that follows (Dovecot would tell only at its 30-second recheck):
        # a NOOP asks, and new mail is fetched instead of idling.
        client.noop()
        if fetcher.notices.take(client):
            return
        client.idle()
        # RFC 2177: re-issue IDLE before the server's 30-minute inactivity timer, and ask sooner.
        deadline = time.monotonic() + min(self.config.idle_timeout, self.config.noop_interval)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(IDLE_SLICE, left)
            began = time.monotonic()
            responses = client.idle_check(timeout=wait)
            fetcher.notices.heard(responses)
            for response in responses:
                if response and response[0] == b"BYE":
                    text = response[-1].decode("utf-8", "replace") if isinstance(response[-1], bytes) else ""
                    raise MailboxError(f"{self.config.address} said BYE: {text}".rstrip(": "))
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                break
            if not responses and time.monotonic() - began < wait / 2:
                break  # the socket woke up with nothing to say: EOF, most likely; DONE will tell
        client.idle_done()

    # -- failures and stopping -----------------------------------------------------------------

    def _succeeded(self) -> None:
        """A complete check: clear the failure streak and say we are waiting for mail."""
        if self._problem is not None:
            log.info(
                "IMAP %s RECOVERED after %d failed attempt(s): connected to %s",
                self.config.name,
                self._failures,
                self.config.address,
            )
        self._problem = None
        self._failures = 0
        state = MailboxConnState.IDLE if self._idle else MailboxConnState.POLLING
        self._recorder.record(state, last_success_at=self._clock(), failures=0, next_attempt_at=None)

    def _explain(self, exc: BaseException) -> str:
        broken = violation(self._client)
        if broken is not None:
            return f"{self.config.address} broke a limit, disconnected: {broken}"
        if isinstance(exc, StoreError):
            return f"raw queue unavailable, mail left on the server: {exc}"
        if isinstance(exc, MailboxError):
            return str(exc)
        if isinstance(exc, CONNECTION_ERRORS):
            return describe(exc)
        if isinstance(exc, SQLAlchemyError):
            return f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        return f"unexpected {exc.__class__.__name__}: {exc}"

    def _failed(self, exc: Exception) -> float:
        """Record a failure, log it if it is a new kind, and return how long to wait."""
        if self._stop.is_set():
            return 0.0  # the stop watcher may have cut the connection: not a failure
        config = self.config
        self._failures += 1
        delay = backoff_delay(self._failures, config.backoff_initial, config.backoff_max, self._rng)
        state = MailboxConnState.BACKOFF
        if isinstance(exc, MailboxAuthError):
            state = MailboxConnState.AUTH_FAILED
            delay = max(delay, min(AUTH_RETRY_FLOOR, config.backoff_max))
        message = self._explain(exc)
        if (state, message) != self._problem:
            verb = "LOGIN FAILED" if state is MailboxConnState.AUTH_FAILED else "DISCONNECTED"
            expected = (MailboxError, StoreError, SQLAlchemyError, *CONNECTION_ERRORS)
            log.warning(
                "IMAP %s %s: %s; retrying with backoff (next in %.2gs)",
                config.name,
                verb,
                message,
                delay,
                exc_info=None if isinstance(exc, expected) else exc,
            )
            self._problem = (state, message)
        else:
            log.debug("IMAP %s still failing (%d): %s", config.name, self._failures, message)
        now = self._clock()
        self._recorder.record(
            state,
            last_error=message,
            last_error_at=now,
            failures=self._failures,
            next_attempt_at=now + timedelta(seconds=delay),
        )
        return delay

    def _hang_up(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            close_quietly(client)

    def _watch(self, stop: threading.Event, finished: threading.Event) -> None:
        """Once `stop` is set, give the run loop STOP_GRACE seconds, then cut its connection."""
        while not stop.wait(1.0):
            if finished.is_set():
                return
        if finished.wait(STOP_GRACE):
            return
        client = self._client
        if client is not None:
            log.debug("IMAP %s cutting the connection to stop", self.config.name)
            abort_socket(client)
