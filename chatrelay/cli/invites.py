"""Commands for invite codes: made offline by an owner, followed, revoked."""

from __future__ import annotations

import datetime

import click

from chatrelay.cli.base import (
    echo, fail, group_option, load_state, main, report_skipped, run_async, save_state, state_option,
)
from chatrelay.cli.groups import parse_duration
from chatrelay.errors import ChatRelayError


@main.group()
def invite() -> None:
    """Invite codes, made offline by an owner."""


@invite.command("create")
@click.option("--uses", default=1, show_default=True, type=int, help="How many joins the code allows.")
@click.option("--expires", default=None, help="Valid for this long: 90s, 30m, 12h, 7d (default: no expiry).")
@group_option
@state_option
def invite_create(uses, expires, which, state_path) -> None:
    """Print an invite code for a group you own; made offline, consumed by the relays
    (its uses split between them)."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
        code = client.make_invite(owned, uses=uses, expires_in_s=parse_duration(expires) if expires else 0)
    except ChatRelayError as exc:
        fail(str(exc))
    save_state(state_path, st)
    made = owned.invites[-1]
    echo(code)
    echo(f"invite {made.id}: {_uses(made.uses)}, {_split(made.shares, owned)}", err=True)


@invite.command("list")
@group_option
@state_option
def invite_list(which, state_path) -> None:
    """The invite codes made for a group you own: uses at each relay, expiry, revocation."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    if not owned.invites:
        echo(f"no invite codes made for {owned.name}; make one with `chatrelay invite create`")
        return
    statuses = run_async(client.list_invites(owned))
    for status in statuses:
        made = status.made
        revoked = [r.revoked for r in status.relays]
        state = ("revoked" if revoked and all(revoked) else
                 "revoked at some relays: revoke it again once the others are back" if made.revoked or any(revoked)
                 else _expiry(made.expires_at))
        echo(f"{made.id}  {status.used}/{made.uses} used  {state}")
        for r in status.relays:
            used = "?" if r.used is None else str(r.used)
            echo(f"  {r.relay}: {used}/{r.share}" + (" revoked" if r.revoked else ""))
    report_skipped(statuses)


@invite.command("revoke")
@click.argument("code_id")
@state_option
def invite_revoke(code_id, state_path) -> None:
    """Revoke an invite code (by the id `invite list` shows): every relay of the group
    refuses it from now on, with reason `revoked`."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        owned, made = client.find_invite(st.owned, code_id)
    except ChatRelayError as exc:
        fail(str(exc))
    answers = run_async(client.revoke_invite(owned, made))
    save_state(state_path, st)
    echo(f"revoked {made.id} at {len(answers)} of {len(answers) + len(answers.skipped)} relays")
    report_skipped(answers)  # a relay down: revoke again once it is back


def _uses(n: int) -> str:
    return f"{n} use" + ("" if n == 1 else "s")


def _split(shares: dict[str, int], owned) -> str:
    if not shares:
        return "counted at each relay"
    from chatrelay.checker import relay_name

    return ", ".join(f"{shares[e.relay_key]} at {relay_name(e)}" for e in owned.relays if e.relay_key in shares)


def _expiry(expires_at: int) -> str:
    if not expires_at:
        return "never expires"
    when = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("expired " if expires_at <= datetime.datetime.now().timestamp() else "expires ") + when
