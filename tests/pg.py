"""A throwaway PostgreSQL server for the scale-out tests: `initdb` in a temporary folder, `pg_ctl start`
on a free loopback port (127.0.0.1 only, its unix socket in the same folder), one database per test.

As root, initdb refuses to run, so the server runs as the `postgres` OS user (the Debian package
creates it) through `runuser`; as anyone else it runs as that user. Clients connect as the database
superuser `study` with trust authentication, which only 127.0.0.1 and the private socket can reach.

Import the fixtures into a test module with `from tests.pg import postgres_server, postgres_url  # noqa: F401`.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

USER = "study"
SKIP_REASON = "PostgreSQL server binaries not found: apt-get install -y postgresql"


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: $PG_BINDIR, Debian's newest /usr/lib/postgresql/*/bin, or PATH."""
    candidates = [Path(os.environ["PG_BINDIR"])] if os.environ.get("PG_BINDIR") else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0], reverse=True)
    candidates += versions
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A running server: `url(db)` and `create_database(name)`; `stop()` ends it and removes its files."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]):
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.data, self.log = root / "data", root / "server.log"
        self.port = 0

    def _server_cmd(self, *args: str) -> list[str]:
        return [*self.as_user, *args]

    def start(self) -> None:
        """initdb, then pg_ctl start on a free port (retried on a port taken in between)."""
        subprocess.run(self._server_cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                                        "-E", "UTF8", "--locale=C", "--no-sync"),
                       check=True, capture_output=True, text=True)
        for _ in range(5):
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            started = subprocess.run(self._server_cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                                      "-w", "-t", "60", "-o", options, "start"),
                                     capture_output=True, text=True)
            if started.returncode == 0:
                return
        log = self.log.read_text() if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop the server (fast: nothing here needs to survive) and remove its folder."""
        subprocess.run(self._server_cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                       capture_output=True, text=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of a database on this server."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database (with the server's own createdb: no Python driver needed) and return its URL."""
        subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name],
                       check=True, capture_output=True, text=True)
        return self.url(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a server in a fresh temporary folder; stop it and remove the folder on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError(SKIP_REASON)
    # not pytest's tmp_path: as root that sits under a 0700 folder the postgres user cannot enter
    root = Path(tempfile.mkdtemp(prefix="study-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            raise FileNotFoundError("running as root needs the OS user 'postgres' to run the server "
                                    "(apt-get install -y postgresql creates it)") from None
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bindir, root, as_user)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session (skips where its binaries are not installed)."""
    if find_bindir() is None:
        pytest.skip(SKIP_REASON)
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database for one test: `postgresql+psycopg://study@127.0.0.1:PORT/DB`."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    return postgres_server.create_database(name)
