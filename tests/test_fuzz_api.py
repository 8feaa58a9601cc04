"""The JSON API fuzzed from its own OpenAPI document on PostgreSQL: never a 5xx.

Schemathesis reads ``/api/v1/openapi.json`` from the app and, for every operation, sends
cases that fit the document (positive) and cases that break it (negative: wrong types,
missing fields, values past the declared bounds), authenticated with a supervisor's bearer
token, through the WSGI app. Click-to-dial goes to a stand-in Teleforge that accepts every
dial, so a 5xx could only be the desk's own. Calls of every state exist beforehand, so
small generated ids hit real rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from desk.extensions import db
from tests.services import fresh_postgres_database
from tests.teleforge_standin import TeleforgeStandIn
from tests.test_input_limits import Desk, Senders, desk_on

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

EXAMPLES = 30  # per operation and generation mode


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with TeleforgeStandIn() as pbx, fresh_postgres_database() as url:
        desk = desk_on(url, tmp_path_factory.mktemp("fuzz-api"), DESK_TELEFORGE_URL=pbx.url,
                       DESK_TELEFORGE_LISTEN="0", DESK_PROVIDER_TIMEOUT="2")
        send = Senders(desk)
        for n in range(1, 4):
            ringing = {"event": "IncomingCall", "call_id": f"api-{n}", "from": f"022{n}",
                       "to": "0301"}
            assert send.placetel(ringing).status_code == 200
        assert send.placetel({"event": "CallAccepted", "call_id": "api-2",
                              "peer": "777ann@fpbx.de"}).status_code == 200
        assert send.placetel({"event": "HungUp", "call_id": "api-3", "type": "missed",
                              "duration": "0"}).status_code == 200
        yield desk
        db.dispose()


def test_no_operation_answers_5xx(desk: Desk) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", desk.app)
    headers = {"Authorization": f"Bearer {desk.token}"}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every route the document describes

    def run(operation: Any, mode: GenerationMode) -> None:
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{operation.label} ({mode}) → {response.status_code}: "
                                f"{response.content[:200]!r}\n  {case.as_curl_command()}")

        fuzz()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(operation, mode)

    assert not failures, "\n".join(failures[:20])
    # The run reached the handlers, not only the front door.
    assert statuses[200] and statuses[400] and statuses[404], statuses
    assert sum(statuses.values()) >= len(operations) * EXAMPLES, statuses
