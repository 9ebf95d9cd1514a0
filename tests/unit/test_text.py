"""The shared small conventions: clipping, bounding, JSON-or-text, base64url, instants, and
the one TTL cache."""

from __future__ import annotations

import pytest

from orchestrator.caching import TtlCache
from orchestrator.text import (
    b64url,
    bounded,
    clip,
    format_instant,
    json_or_text,
    too_large,
    unb64url,
)

T0 = 1_800_000_000.5  # 2027-01-15 08:00:00.5 UTC


def test_clip_marks_what_it_cut() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "ab…" and len(clip("x" * 5000, 2048)) == 2048


def test_bounded_keeps_small_values_and_says_how_large_the_others_were() -> None:
    assert bounded({"a": 1}, 100) == {"a": 1}
    assert bounded("x" * 10, 5) == too_large(12) == "<12 characters, too large to keep>"


def test_json_or_text() -> None:
    assert json_or_text('{"a": [1]}') == {"a": [1]}
    assert json_or_text("plain") == "plain"


@pytest.mark.parametrize("data", [b"", b"\x00\xff", b"token?=&", bytes(range(256))])
def test_base64url_round_trips_unpadded(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    if data:
        assert unb64url(text) == data


@pytest.mark.parametrize("text", ["", "a+b", "a/b", "ab==", "a b", "é"])
def test_base64url_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not base64url"):
        unb64url(text)


def test_one_function_for_every_instant() -> None:
    assert format_instant(T0, "iso") == "2027-01-15T08:00:00.500000Z"
    assert format_instant(T0) == "2027-01-15 08:00:00 UTC"
    assert format_instant(T0, "minutes") == "2027-01-15 08:00 UTC"
    assert format_instant(T0, "time") == "08:00:00Z"


def test_the_ttl_cache_loads_once_while_fresh_then_again() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(10.0, clock=lambda: now[0])
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert cache.get("k", load) == 1
    now[0] = 9.9
    assert cache.get("k", load) == 1 and len(loads) == 1
    now[0] = 10.0
    assert cache.get("k", load) == 2  # expired: loaded again (a rotated secret is picked up)
    assert cache.get("other", load) == 3


def test_a_failed_load_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(10.0, clock=lambda: 0.0)

    def broken() -> int:
        raise RuntimeError("unavailable")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert cache.get("k", lambda: 7) == 7
