"""The one result shape of every plugin, JSON-serializable as it is."""

import base64
import datetime
import decimal
import json
import math
import uuid
from dataclasses import asdict, dataclass, field


@dataclass
class QueryResult:
    """``columns``/``rows`` hold tabular results (SQL); ``data`` holds anything else (a
    REST body, a Redis reply). ``bytes`` is the size of the serialized result, and
    ``metadata`` holds kind-specific facts (HTTP status, affected rows)."""

    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    row_count: int = 0
    data: object = None
    bytes: int = 0
    metadata: dict = field(default_factory=dict)

    def records(self):
        """Rows as dicts keyed by column name (what a table component shows)."""
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows]

    def as_dict(self):
        return asdict(self)


def to_json_value(value):
    """``value`` with every leaf made JSON-serializable (dates as ISO strings, decimals as
    numbers or strings, bytes as UTF-8 text or base64)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(to_json_value(key)): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(item) for item in value]
    return str(value)


def serialized_size(value):
    """Bytes of ``value`` as compact JSON: what the caller will send on."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
