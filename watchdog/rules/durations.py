"""Human durations for the rules file: ``"500ms"``, ``"30s"``, ``"10m"``, ``"1h30m"``, ``"1d"``.

Durations are written as strings with a unit because a bare number is ambiguous (seconds?
minutes?) and a silent misreading would make a rule fire a thousand times too early or
too late. Everything else in the bot works in float seconds; this module is the one
place that turns text into seconds and seconds back into text.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

#: Seconds per unit, largest first: compound durations must go from large to small.
_UNITS: dict[str, float] = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNITS)
# `ms` before `m`, so "500ms" is not read as 500 minutes followed by garbage.
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNKNOWN_UNIT = re.compile(r"\d+(?:\.\d+)?\s*([^\W\d_]+)")
#: A plain decimal number without its sign (5, 2.5, 5., .5, 1e3), as a regex to build on:
#: here it spots a bare number given as a duration, in test files it reads series values.
UNSIGNED_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(rf"[+-]?{UNSIGNED_NUMBER}")
_BARE = "a bare number is ambiguous (seconds? minutes?); durations are strings like '30s'"
_HINT = "durations are strings like '30s', '10m', '1h30m' (units: ms, s, m, h, d)"

#: Validation context key: when true, numbers are refused and only duration strings pass.
STRINGS_ONLY = "durations_as_strings"


def parse_duration(text: str) -> float:
    """Return the number of seconds ``text`` stands for; raise ``ValueError`` saying why not."""
    if not isinstance(text, str):
        raise ValueError(f"bad duration {text!r}: {_HINT}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"bad duration {text!r}: it is empty; {_HINT}")
    if stripped.startswith("-"):
        raise ValueError(f"bad duration {text!r}: durations cannot be negative")
    if _NUMBER.fullmatch(stripped):
        raise ValueError(f"bad duration {text!r}: {_BARE}")
    seconds = 0.0
    position = 0
    last_rank = -1
    for part in _PART.finditer(stripped):
        if part.start() != position:
            break
        rank = _UNIT_ORDER.index(part.group(2))
        if rank <= last_rank:
            raise ValueError(
                f"bad duration {text!r}: units must go from largest to smallest, each once "
                "(like '1h30m')"
            )
        last_rank = rank
        seconds += float(part.group(1)) * _UNITS[part.group(2)]
        position = part.end()
    if position != len(stripped):
        unit = _UNKNOWN_UNIT.match(stripped, position)
        if unit and unit.group(1) not in _UNITS:
            raise ValueError(f"bad duration {text!r}: unknown unit {unit.group(1)!r}; {_HINT}")
        raise ValueError(f"bad duration {text!r}: {_HINT}")
    if not math.isfinite(seconds):
        raise ValueError(f"bad duration {text!r}: too large")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly: ``90`` → ``1m30s``, ``0.5`` → ``500ms``, ``3600`` → ``1h``."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    # Whole milliseconds are the finest unit; rounding first keeps 59.9999 from
    # printing as "59s999ms" through float error.
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        unit_millis = round(size * 1000)
        count, millis = divmod(millis, unit_millis)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _validate_duration(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    strings_only = bool(info.context and info.context.get(STRINGS_ONLY))
    if isinstance(value, int | float) and not isinstance(value, bool) and strings_only:
        raise ValueError(f"bad duration {value!r}: {_BARE}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"bad duration {value!r}: {_HINT}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad duration {value!r}: must be a finite number of seconds >= 0")
    return float(value)


#: Seconds as a float, written as a duration string. Numbers (seconds) are accepted for
#: programmatic construction, but not when validating with ``context={STRINGS_ONLY: True}``.
Duration = Annotated[float, BeforeValidator(_validate_duration)]
