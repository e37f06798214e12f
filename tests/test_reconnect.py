"""The connectors' one reconnect policy and its option names (gateway.reconnect)."""

from __future__ import annotations

import pytest

from gateway.errors import RequestError
from gateway.reconnect import LinkOptions


def test_options_override_the_dialect_defaults_which_override_the_class() -> None:
    link = LinkOptions.read({"backoff_s": "0.2", "max_attempts": "3"}, backoff_max_s=2)
    assert (link.backoff_s, link.backoff_max_s, link.max_attempts) == (0.2, 2.0, 3)
    assert link.timeout_s == LinkOptions().timeout_s


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"timeout_s": "soon"}, "timeout_s"),
        ({"max_attempts": "2.5"}, "max_attempts"),
        ({"timeout_s": "0"}, "timeout_s"),
        ({"backoff_s": "5", "backoff_max_s": "1"}, "backoff_max_s"),
        ({"max_attempts": "-1"}, "max_attempts"),
    ],
)
def test_a_bad_option_is_named(options: dict[str, str], name: str) -> None:
    with pytest.raises(RequestError) as caught:
        LinkOptions.read(options)
    assert caught.value.details["parameter"] == name
    assert name in str(caught.value)


def test_delays_are_jittered_under_a_doubling_capped_ceiling() -> None:
    link = LinkOptions(backoff_s=0.5, backoff_max_s=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0), (500, 4.0)]:
        delays = [link.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2 and min(delays) < ceiling / 2  # spread, not fixed


def test_zero_max_attempts_never_gives_up() -> None:
    assert not LinkOptions(max_attempts=0).gives_up(10_000)
    assert LinkOptions(max_attempts=3).gives_up(4) and not LinkOptions(max_attempts=3).gives_up(3)
