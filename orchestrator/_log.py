"""Structured JSON logs: one object per line, with the job id and run id on every line.

Only what is passed explicitly is logged; the event never is (it carries credentials).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import IO, Any

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "orchestrator_log_context", default=None
)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def bind(**fields: str) -> contextvars.Token[dict[str, str] | None]:
    """Add fields (job_id, request_id...) to every line logged in this context."""
    return _context.set({**(_context.get() or {}), **fields})


def reset(token: contextvars.Token[dict[str, str] | None]) -> None:
    _context.reset(token)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            **(_context.get() or {}),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


def configure(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send the `orchestrator` logger's lines as JSON to `stream` (default: stdout, which
    is CloudWatch in Lambda). A second call changes only the level."""
    logger = logging.getLogger("orchestrator")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def unconfigure() -> None:
    """Remove the JSON handlers (the local runner swaps stdout for a file)."""
    logger = logging.getLogger("orchestrator")
    for handler in [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]:
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
