"""The gateway's pure rules: role order, rate-limit notation, key secrets, the RateLimit-* headers."""

from __future__ import annotations

import pytest
from modelops_gateway.access.domain import Role, digest, new_secret
from modelops_gateway.settings import checked_rate_limit
from modelops_gateway.web.ratelimit import Quota


def test_each_role_includes_the_ones_before_it_and_no_other():
    order = list(Role)
    assert [role.value for role in order] == ["viewer", "developer", "approver", "admin"]
    for i, role in enumerate(order):
        assert [other for other in order if role.includes(other)] == order[: i + 1]


@pytest.mark.parametrize("rate", ["5/minute", "100 per hour", "1/second"])
def test_rates_in_limits_notation_are_accepted(rate):
    assert checked_rate_limit(rate) == rate


@pytest.mark.parametrize("rate", ["lots", "0/minute", "5/fortnight", ""])
def test_other_rates_are_refused(rate):
    with pytest.raises(ValueError):  # noqa: PT011 - the limits library's own messages vary
        checked_rate_limit(rate)


def test_secrets_are_high_entropy_and_only_their_digest_is_comparable():
    first, second = new_secret(), new_secret()
    assert first.startswith("mok_")
    assert len(first) > 40
    assert first != second
    assert digest(first) == digest(first) != digest(second)
    assert first not in digest(first)


def test_quota_headers():
    assert Quota(allowed=True, limit=5, remaining=2, reset_s=30).headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "30",
    }
