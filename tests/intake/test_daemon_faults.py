"""The desk gets over a fault of its database without a restart (issue 8, finding 7): 451 while the
fault lasts, 250 and a processed ticket once it is gone, from the same `helpdesk serve`.

The faults are real: a database file the kernel refuses to write (the immutable attribute: as root,
file modes are no obstacle), a full file system (a small tmpfs, filled), and PostgreSQL stopped and
started again on the same port. The first two need root and a file system that has the attribute;
without them they are skipped, saying why.
"""

from __future__ import annotations

import errno
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.intake.daemon_harness import DeskFactory, Served
from tests.loopback import wait_until
from tests.mail import make_mail, send_mail
from tests.servers.common import ServerUnavailable
from tests.servers.fixtures import server_unavailable
from tests.servers.postgres import PostgresCluster

TEMPFAIL = 451


def send(served: Served, data: bytes) -> int:
    """The reply code to DATA (250 or the refusal), as an MTA would see it."""
    try:
        send_mail(served.smtp_port, data, sender="walkin@example.com")
    except smtplib.SMTPResponseException as exc:
        return int(exc.smtp_code)
    except smtplib.SMTPRecipientsRefused as exc:
        return int(next(iter(exc.recipients.values()))[0])
    return 250


def send_concurrently(served: Served, count: int, tag: str, *, body_size: int = 0) -> list[int]:
    """`count` mails from 8 clients at once: the pool has to open connections while the fault lasts."""
    codes: list[int] = []
    lock = threading.Lock()

    body = ("x" * 76 + "\n") * (body_size // 77) or "hello"

    def one(n: int) -> None:
        data = make_mail(message_id=f"<{tag}-{n}@example.com>", body=body)
        code = send(served, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))  # SMTP lines end in CRLF
        with lock:
            codes.append(code)

    for start in range(0, count, 8):
        threads = [threading.Thread(target=one, args=(n,)) for n in range(start, min(count, start + 8))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return codes


def recovers(served: Served, tag: str, timeout: float = 30.0) -> None:
    """Like an MTA retrying: a mail is accepted within `timeout` and processed; then 24 more, from 8
    clients at once (so every pooled connection is used), are each accepted at the first try."""
    codes: list[int] = []

    def accepted() -> bool:
        codes.append(send(served, make_mail(message_id=f"<{tag}@example.com>")))
        return codes[-1] == 250

    assert wait_until(accepted, timeout, 0.5), f"still refused after the fault was gone: {codes}"
    served.desk.wait_ticket(f"{tag}@example.com", timeout=30)
    after = send_concurrently(served, 24, f"{tag}-after")
    assert after == [250] * 24, after
    served.desk.wait_ticket(f"{tag}-after-23@example.com", timeout=30)
    assert served.alive(), served.log_text()


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    """The kernel refuses every write to these files, through descriptors already open too."""
    done: list[Path] = []
    try:
        for path in paths:
            result = run("chattr", "+i", str(path))
            if result.returncode != 0:
                pytest.skip(
                    f"cannot make a file immutable here (needs root and ext4 or xfs): {result.stderr}"
                )
            done.append(path)
        yield
    finally:
        for path in done:
            run("chattr", "-i", str(path))


@pytest.mark.slow
def test_a_read_only_database_file_is_written_again_once_fixed_without_a_restart(
    make_desk: DeskFactory, sqlite_url: str
) -> None:
    # The pool kept connections SQLite had opened read-only during the fault: 451 until a restart.
    desk = make_desk(sqlite_url)
    served = desk.serve()
    served.wait_ready()
    assert send(served, make_mail(message_id="<before@example.com>")) == 250
    desk.wait_ticket("before@example.com")
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    # Not the -shm file: SQLite writes it through a memory map, and a refused page fault is SIGBUS.
    with immutable([db, db.with_name(db.name + "-wal")]):
        during = send_concurrently(served, 24, "during")
        assert set(during) == {TEMPFAIL}, during
    recovers(served, "after-read-only")
    assert served.stop() == 0


@contextmanager
def small_file_system(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    result = run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield path
    finally:
        if run("umount", str(path)).returncode != 0:
            run("umount", "-l", str(path))


def fill(directory: Path) -> Path:
    """A file that takes every free byte of the file system."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        chunk = b"\0" * 65536
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@pytest.mark.slow
def test_a_full_disk_refuses_mail_with_451_and_the_desk_goes_on_once_there_is_room(
    make_desk: DeskFactory, tmp_path: Path
) -> None:
    with small_file_system(tmp_path / "disk", "8m") as disk:
        desk = make_desk(f"sqlite:///{disk / 'helpdesk.db'}")
        served = desk.serve()
        try:
            served.wait_ready()
            assert send(served, make_mail(message_id="<before@example.com>")) == 250
            desk.wait_ticket("before@example.com")
            filler = fill(disk)
            # Mails larger than what the write-ahead log holds: each needs new room on the disk.
            during = send_concurrently(served, 16, "during", body_size=600_000)
            assert set(during) == {TEMPFAIL}, during
            filler.unlink()
            recovers(served, "after-disk-full")
            assert served.stop() == 0
        finally:
            if served.alive():
                served.kill()
            desk.engine.dispose()


@pytest.mark.slow
def test_postgresql_stopped_then_started_again_is_used_again_without_a_restart(
    make_desk: DeskFactory,
) -> None:
    try:
        cluster = PostgresCluster()
    except ServerUnavailable as exc:
        server_unavailable(str(exc))
    # A cluster of its own: stopping the one the other tests share would stop them too.
    with cluster:
        desk = make_desk(cluster.create_database())
        served = desk.serve()
        served.wait_ready()
        assert send(served, make_mail(message_id="<before@example.com>")) == 250
        desk.wait_ticket("before@example.com")
        port = cluster.port
        desk.engine.dispose()
        cluster.stop()
        during = send_concurrently(served, 8, "during")
        assert set(during) == {TEMPFAIL}, during
        time.sleep(2)  # the worker, the sender and the timers meet the closed server meanwhile
        cluster.start(port=port)
        recovers(served, "after-postgresql")
        assert served.stop() == 0
