"""Production start: README's deployment, done as written, from the runtime lock alone.

A fresh virtualenv gets ``requirements/runtime.lock`` (every file checked against its hash)
and the desk built from a copy of this checkout without dependencies, so nothing the tests or
a developer's ``.venv`` happen to have can stand in for a missing runtime dependency. From a
folder holding only ``app.py`` and ``gunicorn.conf.py`` (the package carries the rest), it
runs README's own ``flask … db upgrade`` and ``gunicorn …`` lines against a SQLite database,
with no provider and no ``DESK_DEMO``: a production desk. That desk must answer ``/healthz``
and ``/login``, advertise no demo login, run no simulator, answer unauthenticated webhooks
401 and warn supervisors that no provider is configured.

Slow: the install takes a minute or more (pip's cache helps on the second run).

``gunicorn.conf.py`` is checked on its own too: several workers without ``DESK_REDIS_URL``
refuse to start, naming the setting; one worker starts.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.servers import BIN, NO_ENV_FILE, ROOT, free_port, tail, wait_healthy
from tests.services import shared_redis_url

PASSWORD = "correct-horse-battery"
INSTALL_TIMEOUT = 600  # seconds; a cold pip cache on a busy machine, with room to spare


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any desk setting or virtualenv of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DESK_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(NO_ENV_FILE)
    env.update(extra)
    return env


def run(args: list[str], *, timeout: float = 120, **kwargs: Any) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def readme_production_commands() -> tuple[list[str], list[str]]:
    """README's migrate and gunicorn lines from "Production deployment", as argument lists."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Production deployment", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
             for line in block.splitlines()]
    migrate = [shlex.split(line) for line in lines if line.startswith("flask ")]
    serve = [shlex.split(line) for line in lines if line.startswith("gunicorn ")]
    assert len(migrate) == 1 and len(serve) == 1, f"README's commands not found in: {lines}"
    return migrate[0], serve[0]


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(virtualenv, site folder): the runtime lock and the desk installed, nothing else."""
    root = tmp_path_factory.mktemp("production")
    # Built from a copy so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = root / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "instance", "build", "*.egg-info", "__pycache__",
        ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", "tests", "bench", "docs",
    ))
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    env = clean_env()
    run([*pip, "install", "--quiet", "--require-hashes", "-r",
         str(ROOT / "requirements" / "runtime.lock")], env=env, timeout=INSTALL_TIMEOUT)
    run([*pip, "install", "--quiet", "--no-deps", str(source)], env=env,
        timeout=INSTALL_TIMEOUT)
    run([*pip, "check"], env=env)  # the lock holds everything pyproject.toml asks for
    site = root / "site"
    site.mkdir()
    for name in ("app.py", "gunicorn.conf.py"):
        shutil.copy(ROOT / name, site / name)
    yield venv, site


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_readme_production_command_serves_from_the_runtime_lock_alone(
    production: tuple[Path, Path], tmp_path: Path,
) -> None:
    venv, site = production
    # The desk this serves is the installed package, not this checkout.
    where = run([str(venv / "bin" / "python"), "-c", "import desk; print(desk.__file__)"],
                cwd=site, env=clean_env())
    assert str(venv) in where and str(ROOT / "desk") not in where, where

    port = free_port()
    env = clean_env(
        DESK_SECRET_KEY="production-start-secret",
        DESK_DATABASE_URL=f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        DESK_REDIS_URL=shared_redis_url(),  # README's command runs two workers
        DESK_REDIS_CHANNEL=f"desk:test:production:{tmp_path.name}",
        DESK_COOKIE_SECURE="0",  # plain HTTP on loopback here; TLS is the proxy's
    )
    migrate, serve = readme_production_commands()
    run([str(venv / "bin" / migrate[0]), *migrate[1:]], cwd=site, env=env)
    flask = [str(venv / "bin" / "flask"), "--app", "app"]
    assert "Not in demo mode" in run([*flask, "users", "demo"], cwd=site, env=env)
    run([*flask, "users", "create", "sue", "--role", "supervisor", "--extension", "100"],
        cwd=site, env=env, input=PASSWORD + "\n")

    bind = serve.index("-b")
    serve[bind + 1] = f"127.0.0.1:{port}"
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([str(venv / "bin" / serve[0]), *serve[1:]], cwd=site, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, url, log, timeout=90)
        assert requests.get(url + "/healthz", timeout=5).status_code == 200

        login = requests.get(url + "/login", timeout=5)
        assert login.status_code == 200 and 'name="password"' in login.text
        assert "demo-password" not in login.text  # no demo login is advertised

        # Production: no simulator, and webhooks without the provider's credentials are 401.
        simulator = requests.post(url + "/simulator/teleforge/click2dial/calls", json={},
                                  timeout=5)
        assert simulator.status_code == 404
        placetel = requests.post(url + "/webhooks/placetel", timeout=5, data={
            "event": "IncomingCall", "call_id": "p1", "from": "0301", "to": "0221"})
        assert placetel.status_code == 401, placetel.text
        stringee = requests.get(url + "/webhooks/stringee/answer/number?to_number=u", timeout=5)
        assert stringee.status_code == 401, stringee.text

        session = requests.Session()
        form = session.get(url + "/login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, form[:500]
        answer = session.post(url + "/login", timeout=5, data={
            "name": "sue", "password": PASSWORD, "csrf_token": token.group(1)})
        assert answer.ok and "/login" not in answer.url, answer.text[:500]
        board = session.get(url + "/supervisor", timeout=5).text
        assert "No provider is configured" in board, board[:2000]
        assert "DESK_PLACETEL_USER" in board and "Provider set-up" in board
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output = tail(log)
        log.close()
    assert "Traceback" not in output, output


# -- gunicorn.conf.py ---------------------------------------------------------------------


def desk_settings(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(DESK_SECRET_KEY="s", DESK_DATABASE_URL=f"sqlite:///{tmp_path / 'd.db'}",
                     **extra)


def gunicorn_args(*options: str) -> list[str]:
    """The desk under this checkout's gunicorn, started in the checkout."""
    return [str(BIN / "gunicorn"), "-k", "gevent", *options, "-b", f"127.0.0.1:{free_port()}",
            "--graceful-timeout", "2", "app:app"]


@pytest.mark.parametrize(("options", "extra"), [
    (["-c", "gunicorn.conf.py", "-w", "2"], {}),  # as README names it
    ([], {"WEB_CONCURRENCY": "3"}),  # read from the folder by itself; workers from the env
])
def test_several_workers_without_redis_refuse_to_start(
    tmp_path: Path, options: list[str], extra: dict[str, str],
) -> None:
    proc = subprocess.Popen(gunicorn_args(*options), cwd=ROOT, env=desk_settings(tmp_path, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"gunicorn kept running with several workers and no Redis: {output}")
    assert proc.returncode != 0
    assert "DESK_REDIS_URL is required with more than one worker" in output, output
    assert "Booting worker" not in output  # refused before forking any


def test_one_worker_without_redis_starts(tmp_path: Path) -> None:
    env = desk_settings(tmp_path)
    run([str(BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env)
    args = gunicorn_args("-c", "gunicorn.conf.py", "-w", "1")
    url = "http://" + args[args.index("-b") + 1]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, url, log, timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


SLOW_CLIENT = 3.5  # seconds between connecting and sending: past gunicorn's default 2 s


@pytest.mark.parametrize("options", [["-c", "gunicorn.conf.py"], []])
def test_a_board_whose_upgrade_request_comes_late_is_still_served(
    tmp_path: Path, options: list[str],
) -> None:
    """gunicorn's gevent worker waits ``keepalive`` seconds for a connection's first request
    and then closes it without a byte; at its default (2 s) a board on a slow link, or one of
    the crowd reconnecting after a restart, got an empty reply (CI saw it as "did not receive
    a valid HTTP response"). gunicorn.conf.py sets 10 s, named or read from the folder."""
    env = desk_settings(tmp_path)
    run([str(BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env)
    args = gunicorn_args(*options, "-w", "1")
    host, port = args[args.index("-b") + 1].split(":")
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, f"http://{host}:{port}", log, timeout=60)
        with socket.create_connection((host, int(port)), timeout=30) as board:
            time.sleep(SLOW_CLIENT)  # the slow link: connected, request not yet sent
            board.sendall(
                b"GET /ws HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            reply = board.recv(200)
        assert reply.startswith(b"HTTP/1.1 101"), (reply, tail(log))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
