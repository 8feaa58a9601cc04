"""Fixtures the Teleforge tests share: a notification list of their own on the shared Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.services import shared_redis_url
from tests.teleforge_standin import list_name


@pytest.fixture
def queue() -> Iterator[tuple[redis.Redis, str]]:
    """The shared Redis and a list name no other test uses; every key under it is removed."""
    client = redis.Redis.from_url(shared_redis_url())
    name = list_name()
    yield client, name
    for key in client.scan_iter(match=name + "*"):
        client.delete(key)
    client.close()
