"""docs/SCALING.md is exactly what bench/scaling.py renders from the checked-in measurement."""

from __future__ import annotations

import json

import pytest

from bench import scaling


def test_the_scaling_document_is_generated_from_the_measurement() -> None:
    measurement = json.loads(scaling.MEASUREMENT.read_text())
    assert scaling.DOCUMENT.read_text() == scaling.render(measurement), (
        "docs/SCALING.md is out of date: run `python -m bench.scaling`"
    )


def test_advancing_and_idle_ticks_write_no_index_in_the_measurement() -> None:
    kinds = json.loads(scaling.MEASUREMENT.read_text())["capacity"]["kinds"]
    index = json.loads(scaling.MEASUREMENT.read_text())["capacity"]["list_index"]
    for kind in ("advance", "idle", "stale"):
        assert set(kinds[kind]["wcu"]) <= {"table"}, kind
    assert kinds["first"]["wcu"][index] > 0 and kinds["last"]["wcu"][index] > 0


def test_the_first_limit_at_a_million_gates_is_an_account_quota() -> None:
    capacity = json.loads(scaling.MEASUREMENT.read_text())["capacity"]
    for cadence in scaling.CADENCES:
        figures = scaling.rates(capacity, 1_000_000, cadence)
        limit, used = scaling.first_limit(figures)
        assert "quota" in limit.name and used >= 1
        assert figures["index_key_wcu"] < scaling.PARTITION_WCU.value
        assert figures["run_key_wcu"] < scaling.PARTITION_WCU.value


def test_the_model_scales_linearly_with_the_gates() -> None:
    capacity = json.loads(scaling.MEASUREMENT.read_text())["capacity"]
    small = scaling.rates(capacity, 1_000, 30.0)
    large = scaling.rates(capacity, 1_000_000, 30.0)
    assert large["wcu"] == pytest.approx(small["wcu"] * 1000)
    assert large["run_key_wcu"] == small["run_key_wcu"]  # one run's key does not get hotter
