"""Real PostgreSQL databases and Redis servers for tests, made and removed by fixtures:
databases on the machine's shared server, and private servers (``PrivateRedis``,
``PrivatePostgres``) a fault test may stop, restart and lock without touching the shared
ones."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, REDIS_URL, require


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the server is missing or refuses us
        require("PostgreSQL", exc)
        raise
    name = f"desk_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def shared_redis_url() -> str:
    """The machine's Redis server, after checking it answers."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        require("Redis", exc)
    return REDIS_URL


class PrivateRedis:
    """A redis-server of our own on a free port, so a test can stop and restart it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            require("redis-server binary", FileNotFoundError("redis-server not on PATH"))
        self.binary = binary
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of our own: its cluster in a temporary folder (data, unix socket
    and log), on a free loopback port, started, restarted and stopped with ``pg_ctl``.

    ``initdb`` refuses to run as root, so as root the folder is given to the ``postgres``
    OS user and every server command runs as that user (``runuser``). Durability is off
    (``fsync``, ``synchronous_commit``, ``full_page_writes``): the cluster is thrown away.
    Connections are trusted; the superuser is ``postgres``.
    """

    def __init__(self) -> None:
        self.bin = self._binaries()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="desk-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                require("runuser (to run PostgreSQL as the postgres user)",
                        FileNotFoundError("runuser not on PATH"))
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                require("the postgres OS user (initdb refuses to run as root)", exc)
                raise
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = [str(runuser), "-u", "postgres", "--"]
        self._initialised = False

    @staticmethod
    def _binaries() -> Path:
        """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, else the
        ones on PATH."""
        def version(path: str) -> int:
            name = Path(path).parent.name
            return int(name) if name.isdigit() else 0

        for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
            if all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
                return Path(folder)
        initdb = shutil.which("initdb")
        if initdb is not None and shutil.which("pg_ctl") is not None:
            return Path(initdb).parent
        require("PostgreSQL server binaries (initdb, pg_ctl)",
                FileNotFoundError("not under /usr/lib/postgresql/*/bin nor on PATH"))
        raise AssertionError("unreachable")  # require() skipped or failed

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        # Output into a file, not a pipe: the server pg_ctl starts would hold a pipe open.
        with tempfile.TemporaryFile(mode="w+") as out:
            result = subprocess.run(
                [*self._as, str(self.bin / tool), *args], cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
            )
            out.seek(0)
            if result.returncode != 0:
                raise RuntimeError(f"{tool} {' '.join(args)} failed: {out.read()[-3000:]}"
                                   f"{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return "\nserver log: " + self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> None:
        if not self._initialised:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
            self._initialised = True
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options,
                  "-w", "-t", "60", "start")

    def restart(self) -> None:
        """A fast shutdown (open connections are cut) and a start with the same options."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-m", "fast", "-w",
                  "-t", "60", "restart")

    def stop(self) -> None:
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its cluster."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, each in its own transaction."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{database}",
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create_database(self, name: str, owner: str, **settings: str) -> str:
        """A database owned by a login role ``owner`` (made if missing), with role settings
        for that database (``lock_timeout="200ms"``); returns the URL the owner connects
        with."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (owner,)).fetchone()
            if not exists:
                conn.execute(f'CREATE ROLE "{owner}" LOGIN')
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            for key, value in settings.items():
                conn.execute(
                    f"ALTER ROLE \"{owner}\" IN DATABASE \"{name}\" SET {key} = '{value}'"
                )
        return self.url(name, owner)
