from __future__ import annotations

import pytest

from shared.phone import NumberRefused, check_number, timezone_of

US = ["US", "CA"]


def test_valid_fictional_number_normalised() -> None:
    got = check_number("+1 (212) 555-0100", allowed_regions=US)
    assert got.e164 == "+12125550100"
    assert got.region == "US"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("911", "emergency"),
        ("112", "emergency"),
        ("+1 900 555 1234", "premium-rate"),
        ("+15551234567", "not a valid phone number"),
        ("hello", "not a phone number"),
        ("+44 20 7946 0000", "not an allowed country"),
        ("", "no phone number"),
    ],
)
def test_refused_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(NumberRefused, match=reason):
        check_number(raw, allowed_regions=US)


def test_own_number_refused() -> None:
    with pytest.raises(NumberRefused, match="own number"):
        check_number("+12125550100", allowed_regions=US, own_numbers=("+12125550100",))


def test_timezone_of_number() -> None:
    assert timezone_of("+12125550100") == "America/New_York"
