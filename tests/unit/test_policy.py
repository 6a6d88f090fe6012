import pytest

from chatrelay import group
from chatrelay.actors.policy import RelayPolicy
from chatrelay.errors import Reason
from chatrelay.group import GroupKind

from helpers import refused


def profile(name):
    _, signed = group.create_group(GroupKind.GROUP, name)
    return group.verify_profile(signed)


def test_default_policy_takes_any_well_named_group():
    RelayPolicy().check(profile("Anything"), groups_now=10_000)


@pytest.mark.parametrize(
    "policy, name, count, message",
    [
        (RelayPolicy(max_groups=2), "ok", 2, "this relay serves at most 2 groups and is full"),
        (RelayPolicy(deny_names=r"casino|spam"), "Free SPAM here", 0, "this relay does not serve groups with such names"),
        (RelayPolicy(), "tab\there", 0, "group name has control characters or surrounding spaces"),
        (RelayPolicy(), " padded", 0, "group name has control characters or surrounding spaces"),
    ],
)
def test_refusals_say_why(policy, name, count, message):
    err = refused(Reason.REFUSED, policy.check, profile(name), count)
    assert err.message == message


def test_denied_group_ids():
    p = profile("Listed")
    err = refused(Reason.REFUSED, RelayPolicy(denied_groups=frozenset({p.group_id.hex()})).check, p, 0)
    assert err.message == "this relay does not serve this group"


def test_a_bad_pattern_is_refused_at_start():
    err = refused(Reason.MALFORMED, RelayPolicy, deny_names="(")
    assert err.message.startswith("--deny-names is not a regular expression")
