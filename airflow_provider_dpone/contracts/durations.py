"""Parsing of human durations (``90s``, ``10m``, ``1h30m``, ``2d``), sizes (``512MB``, ``10GB``)
and cron expressions."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '10m', '1h30m', '2d' or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text and _DURATION.sub("", text).strip() == "":
            return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))
    raise ValueError(
        f"invalid duration {value!r}; expected a duration like '30s', '10m', '1h30m', '2d' "
        "or a number of seconds"
    )


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?$")
_UNIT_BYTES = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNIT_BYTES |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(value: object) -> int:
    """Bytes in ``value`` (``512MB``, ``10GiB``, or a number of bytes); raises ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value.strip().lower()) if isinstance(value, str) else None
    if match and float(match.group(1)) > 0:
        return int(float(match.group(1)) * _UNIT_BYTES[match.group(2) or "b"])
    raise ValueError(
        f"invalid size {value!r}; expected a size like '512MB', '10GB', '1GiB' or a number of bytes"
    )


SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
    "@midnight",
)
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}


def format_seconds(seconds: float) -> str:
    """``600`` -> ``10m``; ``90`` -> ``90s``; ``86400`` -> ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _cron_value(token: str, index: int) -> int:
    names = _CRON_NAMES.get(index, [])
    if token.lower() in names:
        return names.index(token.lower()) + (1 if index == 3 else 0)
    if not token.isdigit():
        raise ValueError(f"'{token}' is not a number")
    number = int(token)
    low, high = _CRON_RANGES[index]
    if not low <= number <= high:
        raise ValueError(f"{number} is outside {low}-{high}")
    return number


def validate_cron(expression: str) -> None:
    """Raise ValueError naming the bad field of a 5-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields, got {len(fields)}")
    labels = ("minute", "hour", "day of month", "month", "day of week")
    for index, field in enumerate(fields):
        try:
            for part in field.split(","):
                base, _, step = part.partition("/")
                if step and (not step.isdigit() or int(step) == 0):
                    raise ValueError(f"bad step '{step}'")
                if base == "*":
                    continue
                start, _, end = base.partition("-")
                low = _cron_value(start, index)
                if end and _cron_value(end, index) < low:
                    raise ValueError(f"range '{base}' runs backwards")
        except ValueError as exc:
            raise ValueError(f"cron {labels[index]} field '{field}': {exc}") from None


def validate_schedule(value: str) -> None:
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown preset {value!r}; allowed: {', '.join(SCHEDULE_PRESETS)}")
        return
    validate_cron(value)
