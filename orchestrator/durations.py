"""Durations in gate definitions: `30s`, `10m`, `1h30m`, `2d`, `500ms`, or ISO 8601 `PT1H30M`."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SHORT = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise ValueError naming the text."""
    raw = text.strip()
    seconds = _parse_iso(raw) if raw[:1] in ("P", "p") else _parse_short(raw)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '10m', '1h30m', 'PT1H')")
    return seconds


def _parse_short(raw: str) -> float | None:
    pos, total, found = 0, 0.0, False
    for match in _SHORT.finditer(raw.lower()):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos, found = match.end(), True
    return total if found and pos == len(raw) else None


def _parse_iso(raw: str) -> float | None:
    match = _ISO.fullmatch(raw.upper())
    if match is None or raw.upper() in ("P", "PT") or raw.upper().endswith("T"):
        return None
    parts = match.groupdict()
    units = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(parts[key]) * factor for key, factor in units.items() if parts[key])


def format_duration(seconds: float) -> str:
    """Render seconds compactly: 5400 -> '1h30m', 42 -> '42s'."""
    remaining = max(0, round(seconds))
    if remaining == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
