"""Private servers for the test-suite: a throwaway PostgreSQL cluster, a private Dovecot IMAP server
and a private Postfix.

Each runs from its own short-lived temp directory, listens on 127.0.0.1 on free ports, and is
never installed or started as a system service. The harness classes do not depend on pytest
(the benchmarks use them too); `tests.servers.fixtures` turns them into fixtures.
"""

from tests.servers.common import ServerUnavailable
from tests.servers.dovecot import DovecotServer
from tests.servers.postfix import PostfixServer
from tests.servers.postgres import PostgresCluster

__all__ = ["DovecotServer", "PostfixServer", "PostgresCluster", "ServerUnavailable"]
