"""The settings file: ``.env`` in the folder the desk starts in is read by ``flask --app app``
and by ``gunicorn app:app``, and a variable set in the environment wins over it.

The commands run for real, in a temporary folder holding only a ``.env`` (the checkout is
put on ``PYTHONPATH`` so ``app`` imports); ``load_env_file`` is also driven directly for the
choices ``DESK_ENV_FILE`` gives. The test suite's own servers never read a developer's
``.env``: ``tests.servers.NO_ENV_FILE``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect

from desk.settings import SettingsError, load_env_file
from tests.servers import BIN, ROOT, free_port, wait_healthy

FILE_TOKEN = "token-from-the-env-file"
ENV_TOKEN = "token-from-the-environment"


def clean_env(**extra: str) -> dict[str, str]:
    """No desk setting, no switch that stops a .env from being read: as on a fresh shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DESK_", "FLASK_")) and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def write_env(folder: Path, database: Path) -> None:
    (folder / ".env").write_text(
        "# copied from .env.example and filled in\n"
        "DESK_SECRET_KEY=secret-from-the-env-file\n"
        f"DESK_DATABASE_URL=sqlite:///{database}\n"
        f'DESK_METRICS_TOKEN="{FILE_TOKEN}"\n'
        "DESK_TELEFORGE_LISTEN=0\n"
        "DESK_SWEEP_INTERVAL=0\n"
    )


def tables(database: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def flask(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("skip_flask_own", [False, True])
def test_the_flask_command_reads_env_and_the_environment_wins(
    tmp_path: Path, skip_flask_own: bool,
) -> None:
    # With FLASK_SKIP_DOTENV=1 Flask itself reads nothing: then it is the desk's app.py.
    extra = {"FLASK_SKIP_DOTENV": "1"} if skip_flask_own else {}
    from_file, from_env = tmp_path / "from-file.sqlite3", tmp_path / "from-env.sqlite3"
    write_env(tmp_path, from_file)
    done = flask(tmp_path, clean_env(**extra), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "users" in tables(from_file)

    from_file.unlink()
    done = flask(tmp_path, clean_env(DESK_DATABASE_URL=f"sqlite:///{from_env}", **extra),
                 "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "users" in tables(from_env) and not from_file.exists()


@contextmanager
def gunicorn(folder: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "2", "app:app"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(proc, url, log)  # its error carries the server's output
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def metrics(url: str, secret: str) -> int:
    return requests.get(url + "/metrics", headers={"Authorization": f"Bearer {secret}"},
                        timeout=5).status_code


def test_gunicorn_reads_env_and_the_environment_wins(tmp_path: Path) -> None:
    database = tmp_path / "desk.sqlite3"
    write_env(tmp_path, database)
    assert flask(tmp_path, clean_env(), "db", "upgrade").returncode == 0

    with gunicorn(tmp_path, clean_env()) as url:  # DESK_METRICS_TOKEN only in .env
        assert metrics(url, FILE_TOKEN) == 200
        assert metrics(url, ENV_TOKEN) == 401
    with gunicorn(tmp_path, clean_env(DESK_METRICS_TOKEN=ENV_TOKEN)) as url:
        assert metrics(url, ENV_TOKEN) == 200
        assert metrics(url, FILE_TOKEN) == 401
    with gunicorn(tmp_path, clean_env(DESK_ENV_FILE="", DESK_SECRET_KEY="s",
                                      DESK_DATABASE_URL=f"sqlite:///{database}")) as url:
        assert metrics(url, FILE_TOKEN) == 404  # no file read: no token, no /metrics


# --- DESK_ENV_FILE ---------------------------------------------------------------------------


def test_env_file_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DESK_TIMEZONE=Europe/Berlin\nDESK_DEMO=1\n")
    (tmp_path / "desk.env").write_text("DESK_TIMEZONE=Africa/Johannesburg\n")

    env: dict[str, str] = {"DESK_DEMO": "0"}
    assert load_env_file(env) == Path(".env")
    assert env == {"DESK_DEMO": "0", "DESK_TIMEZONE": "Europe/Berlin"}  # set ones win

    env = {"DESK_ENV_FILE": "desk.env"}
    assert load_env_file(env) == Path("desk.env")
    assert env["DESK_TIMEZONE"] == "Africa/Johannesburg" and "DESK_DEMO" not in env

    env = {"DESK_ENV_FILE": ""}
    assert load_env_file(env) is None and env == {"DESK_ENV_FILE": ""}

    with pytest.raises(SettingsError, match=r"DESK_ENV_FILE names 'missing\.env'"):
        load_env_file({"DESK_ENV_FILE": "missing.env"})
    (tmp_path / ".env").unlink()
    env = {}
    assert load_env_file(env) is None and env == {}  # no .env at all: nothing to read
