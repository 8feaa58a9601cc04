"""The call buttons reach each provider through its actions module: every provider that
offers buttons names one, and it has every function ``desk.services.actions`` calls."""

from __future__ import annotations

import pytest

from desk.providers import BUILT_IN, REGISTRY

FUNCTIONS = ("controllable", "hangup", "drop", "split", "start_recording", "stop_recording",
             "recording_url")


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_provider_with_buttons_implements_them(name: str) -> None:
    provider = REGISTRY[name]
    module = provider.actions_module()
    if not provider.capabilities:
        assert module is None, f"{name} names an actions module but offers no buttons"
        return
    assert module is not None, f"{name} offers {sorted(provider.capabilities)} without actions"
    missing = [f for f in FUNCTIONS if not callable(getattr(module, f, None))]
    assert not missing, f"{provider.actions} lacks {missing}"
