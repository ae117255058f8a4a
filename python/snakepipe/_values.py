"""Slow-path conversion of measurement and metadata values.

``emit`` checks the common case (``str`` keys; ``int``/``float``/``bool``/
``str`` measurement values; ``str`` metadata values) inline. Anything else
comes here, where it is converted or rejected with a reason. Nothing here
raises: a failure is reported as ``(None, reason, detail)``.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Dict, Mapping, Optional, Tuple

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

Result = Tuple[Optional[Dict[str, Any]], str, str]


def _as_dict(obj: object, what: str) -> Tuple[Optional[Dict[Any, Any]], str]:
    if obj is None:
        return {}, ""
    if isinstance(obj, Mapping):
        try:
            return dict(obj.items()), ""
        except Exception as e:  # a broken Mapping implementation
            return None, f"{what} could not be read: {type(e).__name__}"
    return None, f"{what} must be a dict, not {type(obj).__name__}"


def measurement_value(v: Any) -> Tuple[bool, Any, str]:
    """Convert one measurement value.

    Returns ``(ok, value, problem)``. ``value`` is an ``int``, ``float``,
    ``bool``, ``str`` or ``None`` (meaning: leave the key out).
    """
    if v is None:
        return True, None, ""
    if isinstance(v, bool):
        return True, bool(v), ""
    if isinstance(v, int):
        iv = int(v)
        if INT64_MIN <= iv <= INT64_MAX:
            return True, iv, ""
        return False, None, "integer outside the int64 range"
    if isinstance(v, float):
        fv = float(v)
        if math.isfinite(fv):
            return True, fv, ""
        return False, None, f"non-finite float {fv!r}"
    if isinstance(v, str):
        return True, str(v), ""
    if isinstance(v, (bytes, bytearray, complex)):
        return False, None, f"unsupported value type {type(v).__name__}"
    try:
        iv = operator.index(v)  # numpy integers and other exact integer types
    except Exception:
        pass
    else:
        if INT64_MIN <= iv <= INT64_MAX:
            return True, int(iv), ""
        return False, None, "integer outside the int64 range"
    if hasattr(type(v), "__float__"):  # Decimal, Fraction, numpy floats
        try:
            fv = float(v)
        except Exception as e:
            return False, None, f"{type(v).__name__} not convertible to float: {type(e).__name__}"
        if math.isfinite(fv):
            return True, fv, ""
        return False, None, f"non-finite float {fv!r}"
    return False, None, f"unsupported value type {type(v).__name__}"


def clean_measurements(obj: object) -> Result:
    """Validate and convert measurements; ``(dict, "", "")`` or
    ``(None, reason, detail)``."""
    d, problem = _as_dict(obj, "measurements")
    if d is None:
        return None, "invalid_value", problem
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if k.__class__ is not str and not isinstance(k, str):
            return None, "invalid_key", f"measurement key {k!r} is not a str"
        ok, cv, problem = measurement_value(v)
        if not ok:
            return None, "invalid_value", f"measurement {k!r}: {problem}"
        if cv is not None:
            out[str(k)] = cv
    return out, "", ""


def metadata_value(v: Any) -> Tuple[bool, Optional[str], str]:
    """Convert one metadata value to ``str``; ``None`` means leave it out."""
    if v is None:
        return True, None, ""
    if isinstance(v, str):
        return True, str(v), ""
    if isinstance(v, bool):
        return True, "true" if v else "false", ""
    if isinstance(v, (bytes, bytearray)):
        return True, bytes(v).decode("utf-8", "replace"), ""
    try:
        s = str(v)
    except Exception as e:
        return False, None, f"str() failed for {type(v).__name__}: {type(e).__name__}"
    if not isinstance(s, str):
        return False, None, f"str() of {type(v).__name__} did not return a str"
    return True, s, ""


def clean_metadata(obj: object) -> Result:
    """Validate and convert metadata to ``{str: str}``."""
    d, problem = _as_dict(obj, "metadata")
    if d is None:
        return None, "invalid_value", problem
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            return None, "invalid_key", f"metadata key {k!r} is not a str"
        ok, cv, problem = metadata_value(v)
        if not ok:
            return None, "invalid_value", f"metadata {k!r}: {problem}"
        if cv is not None:
            out[str(k)] = cv
    return out, "", ""
