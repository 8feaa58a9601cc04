"""gunicorn's configuration for the desk: the checks it runs before serving.

gunicorn reads this file by itself when it starts in this folder, where ``app:app`` lives;
README's production command also names it (``-c gunicorn.conf.py``) for a server started
from elsewhere with ``--chdir``. The command line keeps the tuning (worker class, workers,
connections, timeouts): this file refuses a configuration that would serve wrong boards and
sets the one default that would drop them.

``keepalive`` is also how long gunicorn's gevent worker waits for a connection's *first*
request line (``gunicorn/workers/base_async.py``: every ``next(parser)`` runs under
``gevent.Timeout(keepalive)``); past it the socket is closed without a byte. Its default, 2 s,
dropped boards: a board on a slow link, or the crowd reconnecting after a restart while the
worker renders the first snapshots, sent its upgrade request a little later than that and got
an empty reply. 10 s covers both; an idle keep-alive connection costs the worker one
greenlet for that long. ``--keep-alive`` on the command line overrides it.

More than one worker needs ``DESK_REDIS_URL``: without Redis each worker fans a change out to
the boards it holds itself, so a board would silently miss every call whose webhooks another
worker took. Refusing at start says so at once, naming the setting, instead of boards that
look live and are not.
"""

from __future__ import annotations

import os
from typing import Any

keepalive = 10  # seconds; see above


def redis_required(workers: int, redis_url: str | None) -> str | None:
    """Why this many workers cannot start without Redis, or None when they can."""
    if workers <= 1 or (redis_url or "").strip():
        return None
    return (
        f"DESK_REDIS_URL is required with more than one worker ({workers} configured): without "
        "Redis a board sees only the calls its own worker received. Set DESK_REDIS_URL "
        "(redis://host:6379/0), or run one worker (-w 1). See README, Production deployment."
    )


def on_starting(server: Any) -> None:
    """gunicorn's hook, in the master before it binds or forks: refuse a wrong set-up."""
    # The benchmarks serve their own comparison apps (bench.*) from this folder, with several
    # workers and no desk settings; only they are exempt.
    uri = str(getattr(server.app, "app_uri", None) or server.cfg.wsgi_app or "")
    if uri.startswith("bench."):
        return
    problem = redis_required(server.cfg.workers, os.environ.get("DESK_REDIS_URL"))
    if problem:
        # gunicorn prints a RuntimeError's message as "Error: ..." and exits with status 1.
        raise RuntimeError(problem)
