"""The suite's figures: what was injected, what was checked, and what went wrong.

Tests add to `FIGURES` as they go (before asserting, so a failing run still shows its
numbers); tests/reliability/conftest.py writes them to build/reliability.json at the end of
the session, with the secret canaries' leak count, and scripts/reliability_table.py renders
that file into the README.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tests.reliability.canaries import Scanner

SOAK = 1
"""Multiplier of examples and load sizes: 1 in CI, 10 with `pytest --soak` (set by conftest)."""

SEED = int(os.environ.get("RELIABILITY_SEED", "7"))
"""Base seed of every random fault schedule (set RELIABILITY_SEED to explore others)."""

OUTCOMES = (
    "lost_progress",
    "double_advances",
    "unanswered_jobs",
    "wrong_answers",
    "escaped_exceptions",
    "late_returns",
)
"""Everything that must stay zero (with `leaked_secrets`, from the canaries)."""


def scaled(n: int) -> int:
    return n * SOAK


@dataclass
class Figures:
    """Counters shared by the tests of one session. Thread-safe."""

    faults: Counter[str] = field(default_factory=Counter)
    observed: Counter[str] = field(default_factory=Counter)
    fuzz: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    load: dict[str, float] = field(default_factory=dict)
    tests: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counter: str, values: dict[str, int] | Counter[str]) -> None:
        with self._lock:
            target: Counter[str] = getattr(self, counter)
            for key, value in values.items():
                target[key] += int(value)
            if counter == "outcomes":
                for key in OUTCOMES:
                    target[key] += 0

    def example(self, target: str) -> None:
        """Count one fuzz example (called from inside the property)."""
        with self._lock:
            self.fuzz[target] += 1

    def to_json(self, scanner: Scanner, command: str) -> dict[str, Any]:
        with self._lock:
            outcomes = {key: self.outcomes[key] for key in OUTCOMES}
            outcomes["leaked_secrets"] = scanner.leak_count
            return {
                "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": command,
                "soak": SOAK,
                "seed": SEED,
                "seconds": round(time.monotonic() - self.started, 1),
                "tests": dict(sorted(self.tests.items())),
                "faults_injected": dict(sorted(self.faults.items())),
                "observed": dict(sorted(self.observed.items())),
                "fuzz_examples": dict(sorted(self.fuzz.items())),
                "checked": dict(sorted(self.checked.items())),
                "load": dict(self.load),
                "canaries": {
                    "registered": scanner.canaries,
                    "texts_scanned": scanner.texts,
                    "megabytes_scanned": round(scanner.chars / 1e6, 1),
                    "not_scanned": list(scanner.problems),
                },
                "outcomes": outcomes,
            }


FIGURES = Figures()


def write(path: Path, scanner: Scanner, args: Sequence[str]) -> dict[str, Any]:
    """Write the figures as JSON (the file scripts/reliability_table.py reads)."""
    command = " ".join(["python -m pytest", *args])
    data = FIGURES.to_json(scanner, command)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data
