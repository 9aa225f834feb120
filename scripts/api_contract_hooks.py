"""schemathesis hooks of scripts/api-contract.

1. Call times. A Segment call's `timestamp` (after the `sentAt` correction) must fall
between two years before and one day after the time the server receives it
(docs/openapi.json says so in words), and an outcome's `closed_at` may not be in the
future. JSON Schema has no way to state a window around "now", so generated date-times
land anywhere from year 0000 to 9999 and a valid request would be refused for its time
alone. This hook moves every `timestamp` and `sentAt` that *is* a date-time (matches the
document's pattern) into that window before the request is sent, and an outcome's
`closed_at` into the past; everything else (a value that is not a date-time, of another
type, missing) is left as generated, so negative cases stay negative.

2. Compressed bodies. The form and event routes document a `Content-Encoding` header
(gzip, deflate, identity) that says how the body is encoded. schemathesis generates the
header but sends the body as it is; the serializers below compress the body as the
header says, so a generated `Content-Encoding: gzip` comes with a gzip body. Any other
value (a negative case) is sent with the body untouched.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.transport.requests import REQUESTS_TRANSPORT

SEGMENT_PATHS = {
    "/v1/page",
    "/v1/screen",
    "/v1/track",
    "/v1/identify",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
}
TIME_FIELDS = ("timestamp", "sentAt")
# Well inside the window: up to about 300 days back.
SPREAD_SECONDS = 300 * 24 * 3600


# The document's `DateTime` pattern, and its outcome dates.
DATE_TIME = re.compile(
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:"
    r"([0-5][0-9]|60)(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
DATE = re.compile(r"^[0-9]{4}[-/](0[1-9]|1[0-2])[-/](0[1-9]|[12][0-9]|3[01])$")


def _is_date_time(value: object) -> bool:
    return isinstance(value, str) and DATE_TIME.match(value) is not None


def _is_closing_date(value: object) -> bool:
    return isinstance(value, str) and (DATE.match(value.strip()) or DATE_TIME.match(value.strip())) is not None


def _in_window(value: str, now: datetime) -> str:
    # The same generated value always lands at the same distance from now.
    offset = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big") % SPREAD_SECONDS
    return (now - timedelta(seconds=offset)).isoformat()


def _fix_call(call: object, now: datetime) -> None:
    if not isinstance(call, dict):
        return
    if _is_date_time(call.get("timestamp")):
        call["timestamp"] = _in_window(call["timestamp"], now)
    if _is_date_time(call.get("sentAt")):
        # The sender's clock when it sent: now, so the skew correction moves nothing.
        call["sentAt"] = now.isoformat()


def _fix_outcome(outcome: object, now: datetime) -> None:
    if isinstance(outcome, dict) and _is_closing_date(outcome.get("closed_at")):
        outcome["closed_at"] = _in_window(outcome["closed_at"], now)[:10]


@schemathesis.hook
def before_call(context, case, kwargs):
    now = datetime.now(timezone.utc)
    if case.path == "/v1/outcomes":
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("outcomes"), list):
            body = body["outcomes"]
        for outcome in body if isinstance(body, list) else [body]:
            _fix_outcome(outcome, now)
        return
    if case.path not in SEGMENT_PATHS or not isinstance(case.body, dict):
        return
    _fix_call(case.body, now)
    batch = case.body.get("batch")
    if isinstance(batch, list):
        for call in batch:
            _fix_call(call, now)


def _content_encoding(case) -> str | None:
    for name, value in (case.headers or {}).items():
        if name.lower() == "content-encoding" and isinstance(value, str):
            return value
    return None


def _compressing(serialize):
    def serializer(ctx, value):
        out = serialize(ctx, value)
        encoding = _content_encoding(ctx.case)
        if encoding not in ("gzip", "deflate"):
            return out
        if "json" in out:
            raw = json.dumps(out.pop("json")).encode()
        else:
            data = out.pop("data", b"")
            if isinstance(data, dict):
                from urllib.parse import urlencode

                data = urlencode(data, doseq=True)
            raw = data.encode() if isinstance(data, str) else (data or b"")
        out["data"] = gzip.compress(raw, mtime=0) if encoding == "gzip" else zlib.compress(raw)
        return out

    return serializer


for _media_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
    REQUESTS_TRANSPORT._serializers[_media_type] = _compressing(REQUESTS_TRANSPORT._serializers[_media_type])
