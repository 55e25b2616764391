"""The IMAP side of a mailbox, with imapclient: connect, TLS, log in, mark processed mail, hang up.

Failures come out as `MailboxError` (the server or network) or `MailboxAuthError` (the login),
carrying the server's own words, so the poller can record them for `helpdesk status`.
"""

from __future__ import annotations

import ast
import imaplib
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import CapabilityError, LoginError

from intake.errors import MailboxAuthError, MailboxError
from intake.imap_bounds import BoundedIMAPClient, ResponseBounds, ResponseBudget, bounds_of
from intake.imap_config import SEEN, ImapMailboxConfig, resolve_credential

# What a broken connection or a refusing server raises inside imapclient and imaplib: socket and
# TLS errors (OSError), NO/BAD replies (IMAP4.error) and BYE or EOF (IMAP4.abort, a subclass).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, imaplib.IMAP4.error, EOFError)
SEEN_FLAG = SEEN.encode()
DELETED_FLAG = b"\\Deleted"


def server_text(exc: BaseException) -> str:
    """The human part of an imapclient/imaplib error: `b'[AUTHENTICATIONFAILED] ...'` -> the text."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if len(text) > 3 and text[0] == "b" and text[1] in "'\"":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return text or exc.__class__.__name__


def describe(exc: BaseException) -> str:
    """A one-line account of a failure, for the log and the state table."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, imaplib.IMAP4.abort):
        return f"connection lost: {server_text(exc)}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return server_text(exc)


def ssl_context(config: ImapMailboxConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def default_budget(config: ImapMailboxConfig) -> ResponseBudget:
    """What the answer to any command may hold, unless the fetcher expects mail bodies."""
    return ResponseBudget(
        max_bytes=config.max_response_bytes,
        max_lines=config.max_response_lines,
        max_literal=config.max_response_bytes,
        timeout=config.command_timeout,
    )


def connect(config: ImapMailboxConfig) -> IMAPClient:
    """Open the connection (TLS from the first byte with tls = "ssl"); times come back zone-aware.

    Every answer of the server is bounded (`intake.imap_bounds`), and the socket has TCP keepalive.
    """
    timeout = SocketTimeout(connect=config.connect_timeout, read=config.read_timeout)
    bounds = ResponseBounds(default_budget(config), config.read_timeout)
    try:
        client = BoundedIMAPClient(
            config.host,
            config.port,
            bounds=bounds,
            ssl=config.tls == "ssl",
            ssl_context=ssl_context(config) if config.tls == "ssl" else None,
            timeout=timeout,
        )
    except CONNECTION_ERRORS as exc:
        why = violation(bounds) or describe(exc)
        raise MailboxError(f"cannot connect to {config.address}: {why}") from exc
    client.normalise_times = False  # INTERNALDATE with its zone, comparable with aware UTC times
    return client


def violation(client: object) -> str | None:
    """How the server broke the bounds of this connection, if it did."""
    bounds = client if isinstance(client, ResponseBounds) else bounds_of(client)
    return bounds.violation if bounds is not None else None


def expect(client: object, budget: ResponseBudget) -> None:
    """Give the answer to the next command on `client` this budget instead of the default."""
    bounds = bounds_of(client)
    if bounds is not None:
        bounds.expect(budget)


def log_in(client: IMAPClient, config: ImapMailboxConfig) -> None:
    """STARTTLS when configured (RFC 3501 section 6.2.1), then LOGIN or XOAUTH2."""
    try:
        if config.tls == "starttls":
            try:
                client.starttls(ssl_context(config))
            except CapabilityError as exc:
                raise MailboxError(f"{config.address} does not offer STARTTLS") from exc
        credential = resolve_credential(config)
        try:
            if credential.mechanism == "xoauth2":
                client.oauth2_login(config.user, credential.secret)
            else:
                client.login(config.user, credential.secret)
        except LoginError as exc:
            raise MailboxAuthError(f"login refused: {server_text(exc)}") from exc
    except CONNECTION_ERRORS as exc:
        raise MailboxError(f"logging in to {config.address}: {describe(exc)}") from exc


def close_quietly(client: IMAPClient, timeout: float = 2.0) -> None:
    """LOGOUT if the server still answers within `timeout`; close the socket in any case.

    A server that broke the bounds gets no LOGOUT: nothing more is read from it.
    """
    try:
        if violation(client) is not None:
            raise MailboxError("no LOGOUT after a broken bound")
        client.socket().settimeout(timeout)
        client.logout()
    except Exception:  # the connection is already broken: closing it is all that is left
        try:
            client.shutdown()
        except Exception:
            pass


def abort_socket(client: IMAPClient) -> None:
    """Make a blocked read on this connection return at once (called from another thread).

    The plain socket method is used even for TLS, so the SSL object stays intact for the thread
    that is reading; that thread sees EOF and gives up.
    """
    try:
        socket.socket.shutdown(client.socket(), socket.SHUT_RDWR)
    except OSError:
        pass


class MailNotices:
    """Reads what the server said about new mail in the answers to our own commands.

    A server tells a client that the folder grew (`* n EXISTS`, RFC 3501 section 7.3.1) at the
    end of a command, from a view of the folder it refreshes only then (section 5.2). So a
    SEARCH issued a moment after a mail arrived does not find it, and the EXISTS that comes with
    its answer is the only notice the client gets: an IDLE that follows does not repeat it, and
    Dovecot looks at an idling folder again only every 30 seconds. imapclient leaves such
    unsolicited answers in imaplib's table of untagged responses, where `take` reads them.

    Servers may repeat EXISTS without a change; a repeated size right after the last one is no
    news, so a talkative server costs one extra SEARCH, never a loop. EXPUNGE (our own MOVE
    sends them) lowers the size, after which any EXISTS counts as news.
    """

    def __init__(self) -> None:
        self._size: int | None = None  # the size last announced
        self._shrunk = False  # EXPUNGEs came since, so an equal size can still mean new mail

    def take(self, client: IMAPClient) -> bool:
        """Whether new mail was announced since the last call; forgets the announcements."""
        pending = client._imap.untagged_responses  # imapclient has no public reader for these
        sizes = [int(value) for value in pending.pop("EXISTS", [])]
        expunged = bool(pending.pop("EXPUNGE", []))
        if not sizes:
            self._shrunk = self._shrunk or expunged
            return False
        news = self._size is not None and (sizes[-1] != self._size or self._shrunk or len(set(sizes)) > 1)
        self._size = sizes[-1]
        # EXPUNGEs answered in the same breath may have come after the last EXISTS.
        self._shrunk = expunged
        return news

    def heard(self, responses: Sequence[tuple[Any, ...]]) -> None:
        """Note sizes and expunges the server sent during IDLE (imapclient hands them over parsed)."""
        for response in responses:
            if len(response) > 1 and response[1] == b"EXISTS":
                self._size, self._shrunk = int(response[0]), False
            elif len(response) > 1 and response[1] == b"EXPUNGE":
                self._shrunk = True


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create `folder` unless it exists (the target of `processed = "move:..."`)."""
    if not client.folder_exists(folder):
        try:
            client.create_folder(folder)
        except imaplib.IMAP4.error:
            if not client.folder_exists(folder):  # someone else may have created it meanwhile
                raise


def mark_processed(client: IMAPClient, config: ImapMailboxConfig, uids: Sequence[int]) -> None:
    """Flag stored mail \\Seen, or move it out of the folder, by UID.

    MOVE is UID MOVE when offered (RFC 6851); otherwise COPY, then \\Deleted and UID EXPUNGE of just
    these UIDs (RFC 4315 UIDPLUS); a server with neither gets a plain EXPUNGE (RFC 3501), which
    also removes mail someone else marked \\Deleted in that folder.
    """
    if not uids:
        return
    target = config.move_to
    if target is None:
        client.add_flags(uids, [SEEN_FLAG], silent=True)
    elif client.has_capability("MOVE"):
        client.move(uids, target)
    else:
        client.copy(uids, target)
        client.add_flags(uids, [DELETED_FLAG], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()
