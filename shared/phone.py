"""Which numbers the agent may dial, and why not when it may not."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

# Premium-rate and shared-cost lines charge the caller; personal numbers and UAN can be premium too.
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "it is a premium-rate number",
    PhoneNumberType.SHARED_COST: "it is a shared-cost number that charges the caller",
}


class NumberRefused(ValueError):
    """The number cannot or must not be called; str() is the reason, fit to show the user."""


@dataclass(frozen=True)
class Dialable:
    e164: str
    region: str
    pretty: str


def check_number(
    raw: str,
    *,
    allowed_regions: list[str],
    own_numbers: tuple[str, ...] = (),
    default_region: str = "US",
) -> Dialable:
    """Parse and vet a number typed by the user; raise NumberRefused with the reason."""
    text = raw.strip()
    if not text:
        raise NumberRefused("no phone number was given")
    digits = "".join(ch for ch in text if ch.isdigit())
    for region in {default_region, *allowed_regions}:
        emergency = shortnumberinfo.is_emergency_number(digits, region)
        if emergency or shortnumberinfo.connects_to_emergency_number(digits, region):
            raise NumberRefused(f"{text} is an emergency number; the agent never calls emergency services")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise NumberRefused(
            f"{text!r} is not a phone number; write it in international form, e.g. +1 212 555 0100"
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise NumberRefused(
            f"{text} is not a valid phone number (check the area code and length), e.g. +1 212 555 0100"
        )
    region = phonenumbers.region_code_for_number(parsed) or "??"
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    reason = _REFUSED_TYPES.get(phonenumbers.number_type(parsed))
    if reason:
        raise NumberRefused(f"{e164} is refused: {reason}")
    if region not in allowed_regions:
        raise NumberRefused(
            f"{e164} is in {region}, which is not an allowed country (allowed: {', '.join(allowed_regions)})"
        )
    if e164 in {n for n in own_numbers if n}:
        raise NumberRefused(f"{e164} is the bot's own number; it cannot call itself")
    pretty = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return Dialable(e164=e164, region=region, pretty=pretty)


def timezone_of(e164: str) -> str | None:
    """The callee's likely timezone (the first one phonenumbers knows for the number), for calling windows."""
    from phonenumbers import timezone as pn_timezone

    zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164))
    zone = zones[0] if zones else None
    return None if zone in (None, "Etc/Unknown") else zone
