"""Twilio REST resource shapes: SIDs, dates, error bodies, Call and Recording JSON.

Follows twilio.com/docs/voice/api/call-resource, twilio.com/docs/voice/api/recording and
twilio.com/docs/usage/twilios-response (RFC 2822 dates, ``uri`` relative to api.twilio.com, error JSON
``{code, message, more_info, status}``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(when: datetime | None) -> str | None:
    return format_datetime(when, usegmt=False).replace("-0000", "+0000") if when else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


def account_base(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def call_json(call: Any) -> dict[str, Any]:
    """The Call resource for a ``network.Call``."""
    uri = f"{account_base(call.account_sid)}/Calls/{call.sid}"
    duration = call.duration_s()
    return {
        "sid": call.sid, "account_sid": call.account_sid, "parent_call_sid": call.parent_call_sid,
        "date_created": rfc2822(call.date_created), "date_updated": rfc2822(call.date_updated),
        "to": call.to, "to_formatted": call.to, "from": call.from_, "from_formatted": call.from_,
        "phone_number_sid": None, "status": call.status,
        "start_time": rfc2822(call.start_time), "end_time": rfc2822(call.end_time),
        "duration": None if duration is None else str(duration), "price": None, "price_unit": "USD",
        "direction": call.direction, "answered_by": call.answered_by, "api_version": API_VERSION,
        "forwarded_from": None, "group_sid": None, "caller_name": None, "queue_time": "0",
        "trunk_sid": None, "uri": uri + ".json",
        "subresource_uris": {
            name: f"{uri}/{name.title().replace('_', '')}.json"
            for name in ("notifications", "recordings", "payments", "events", "siprec", "streams",
                         "transcriptions", "user_defined_message_subscriptions", "user_defined_messages")
        },
    }


def recording_json(rec: Any) -> dict[str, Any]:
    uri = f"{account_base(rec.account_sid)}/Recordings/{rec.sid}"
    return {
        "sid": rec.sid, "account_sid": rec.account_sid, "call_sid": rec.call_sid, "conference_sid": None,
        "api_version": API_VERSION, "date_created": rfc2822(rec.date_created),
        "date_updated": rfc2822(rec.date_created), "start_time": rfc2822(rec.date_created),
        "duration": str(int(rec.duration_s)), "price": None, "price_unit": "USD", "status": "completed",
        "channels": rec.channels, "source": "OutboundAPI", "error_code": None, "track": "both",
        "uri": uri + ".json", "media_url": f"https://api.twilio.com{uri}", "encryption_details": None,
        "subresource_uris": {"add_on_results": f"{uri}/AddOnResults.json",
                             "transcriptions": f"{uri}/Transcriptions.json"},
    }


def page_json(key: str, items: list[dict[str, Any]], uri: str, page: int, page_size: int,
              total: int, query: str = "") -> dict[str, Any]:
    """A 2010 API list page (the SDK follows ``next_page_uri``); ``query`` keeps the filters."""
    has_next = (page + 1) * page_size < total
    return {
        key: items, "uri": f"{uri}?PageSize={page_size}&Page={page}{query}",
        "first_page_uri": f"{uri}?PageSize={page_size}&Page=0{query}",
        "next_page_uri": f"{uri}?PageSize={page_size}&Page={page + 1}{query}" if has_next else None,
        "previous_page_uri": f"{uri}?PageSize={page_size}&Page={page - 1}{query}" if page > 0 else None,
        "page": page, "page_size": page_size, "start": page * page_size,
        "end": page * page_size + len(items) - 1,
    }
