"""Who is alive, told without the database layer: a process's holder name, the heartbeat's timing,
and which holders on this host no longer exist.

models.heartbeat keeps the rows and `live_daemons`; a piped `helpdesk ingest` asks the same
question with the DBAPI alone (intake/pipe_store.py), by the same rule and the same numbers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

# Every daemon beats this often; one silent for HEARTBEAT_TIMEOUT is taken for dead (or paused)
# and what it holds is given back. The timeout spans several beats, so a busy database or a
# long pause of the interpreter does not make a live daemon look dead.
HEARTBEAT_EVERY = 2.0
HEARTBEAT_TIMEOUT = 10.0


def holder_name() -> str:
    """How this process names itself in `claimed_by` (and in a mailbox's `holder`): host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_holders(holders: Iterable[str | None]) -> list[str]:
    """Holder names on this host whose process is gone (ours excluded)."""
    host = socket.gethostname()
    me = holder_name()
    dead: list[str] = []
    for holder in holders:
        if not holder or holder == me:
            continue
        name, _, pid = holder.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(holder)
    return dead
