"""Shared plumbing for the benchmark suite: servers, databases, process metrics, percentiles.

Every server the suite measures (the desk, the Flask-SocketIO peer, the empty-endpoint
ceiling) is started with README's production command, ``gunicorn -k gevent -w W
--worker-connections 5000 --graceful-timeout 10``, on a free loopback port, and waited for
as the tests wait for theirs (``tests.servers.wait_healthy``). Databases are
fresh per server: a SQLite file in a temporary folder, or a PostgreSQL database the suite
creates and drops itself. CPU and memory come from ``/proc`` so the cost of the load
generator can be reported next to the cost of the server.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
POSTGRES_ADMIN = os.environ.get(
    "DESK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DESK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- /proc metrics ---------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- databases ------------------------------------------------------------------------------


@dataclass
class Database:
    """A fresh database for one server; ``url`` is what the app gets as DESK_DATABASE_URL."""

    kind: str  # "sqlite" or "postgres"
    url: str = ""
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _name: str = ""

    def __post_init__(self) -> None:
        if self.kind == "sqlite":
            self._tmp = tempfile.TemporaryDirectory(prefix="desk-bench-")
            self.url = f"sqlite:///{self._tmp.name}/bench.sqlite3"
        else:
            self._name = f"desk_bench_{uuid.uuid4().hex[:8]}"
            self._admin(f"CREATE DATABASE {self._name}")
            base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            self.url = f"{base}/{self._name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def count(self, sql: str, **params: object) -> int:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(sql), params).scalar_one())
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
        elif self._name:
            self._admin(f"DROP DATABASE IF EXISTS {self._name} WITH (FORCE)")


# -- servers --------------------------------------------------------------------------------


class Server:
    """README's production command for ``app`` (``module:variable``) on a loopback port."""

    def __init__(self, app: str, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(workers),
             "--worker-connections", "5000", "-b", f"127.0.0.1:{self.port}",
             "--graceful-timeout", "10", app],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            # Measured only once every worker is forked, not just the first to answer.
            wait_healthy(self.proc, self.url, self.log, timeout=60,
                         ready=lambda: len(self.worker_pids()) >= workers)
        except RuntimeError:
            self.stop()
            raise

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def cpu(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        return cpu_seconds(self.proc.pid) + sum(cpu_seconds(p) for p in self.worker_pids())

    def rss(self) -> int:
        """Resident memory of the workers (the master holds no boards)."""
        return sum(rss_bytes(p) for p in self.worker_pids())

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


# -- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What RESULTS.md says about where the numbers came from."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for dist in ("flask", "flask-sock", "simple-websocket", "gunicorn", "gevent", "sqlalchemy",
                 "psycopg", "redis", "flask-socketio", "python-socketio", "websockets",
                 "aiohttp"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{dist} {version(dist)}")
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": ", ".join(versions),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
