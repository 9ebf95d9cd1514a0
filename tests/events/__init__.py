"""Event fixtures (AWS's documented shapes) and the one helper that reads them."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _raw(name: str) -> str:
    return (Path(__file__).parent / f"{name}.json").read_text()


def load_event(name: str = "job", **data: Any) -> dict[str, Any]:
    """A fresh copy of an event fixture; keyword arguments replace keys of `data`."""
    event: dict[str, Any] = copy.deepcopy(json.loads(_raw(name)))
    job_data = event["CodePipeline.job"]["data"]
    for key, value in data.items():
        if value is None:
            job_data.pop(key, None)
        else:
            job_data[key] = value
    return event
