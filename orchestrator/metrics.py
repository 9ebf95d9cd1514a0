"""CloudWatch metrics in the Embedded Metric Format: one JSON line per invocation.

CloudWatch Logs turns these lines into metrics without an API call (no extra latency, no
PutMetricData permission). Names, in the namespace from ORCHESTRATOR_METRICS_NAMESPACE,
dimension Service=orchestrator:

    Ticks              every job handled
    GatesSucceeded     final success answers
    GatesFailed        failure answers (property FailureType says which)
    AnswersNotSent     jobs CodePipeline could not be told about (alarmed)
    StoreUnavailable   ticks deferred because DynamoDB (or another dependency) failed
    TickMilliseconds   time spent in the handler
"""

from __future__ import annotations

import json
import time
from typing import IO


class Metrics:
    """Writes EMF lines to a stream (stdout in Lambda)."""

    def __init__(self, namespace: str, stream: IO[str]) -> None:
        self._namespace = namespace
        self._stream = stream

    def emit(self, values: dict[str, float], properties: dict[str, str] | None = None) -> None:
        units = {
            name: "Milliseconds" if name.endswith("Milliseconds") else "Count" for name in values
        }
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": n, "Unit": u} for n, u in units.items()],
                    }
                ],
            },
            "Service": "orchestrator",
            **(properties or {}),
            **values,
        }
        self._stream.write(json.dumps(line) + "\n")
        self._stream.flush()
