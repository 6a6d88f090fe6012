"""Commands to run a group: its members and their roles, removing and banning members,
deleting posts (owners and moderators), and the reports members send."""

from __future__ import annotations

import click

from chatrelay.cli.base import (
    echo, fail, group_option, load_state, main, owned_command, report_skipped, run_async, state_option,
)
from chatrelay.errors import ChatRelayError


@main.command()
@group_option
@state_option
def members(which, state_path) -> None:
    """The group's members, oldest first, one a line: key fingerprint, name, role, and
    since when (UTC). Members a relay shows that do not check out are skipped."""
    from chatrelay import moderators

    _, listed = owned_command(which, state_path, moderators.list_members, save=False)
    for member in listed:
        echo(str(member))
    report_skipped(listed)


@main.command()
@click.argument("member")
@click.argument("role", type=click.Choice(["moderator", "member"]))
@group_option
@state_option
def role(member, role, which, state_path) -> None:
    """Make MEMBER a moderator (it may delete members' posts and remove members), or a
    member again. MEMBER is named as `chatrelay members` shows it: NAME,
    NAME#FINGERPRINT, or the member's key."""
    from chatrelay import moderators

    _, done = owned_command(which, state_path, lambda owned: moderators.set_role(owned, member, role))
    echo(f"{done[0]} is a {role}")
    report_skipped(done)


def _as_moderator(which, state_path, action):
    """Run `action(who)` as an owner or a member of the group (a moderator, as the relays
    and every member will check)."""
    _, answers = owned_command(which, state_path, action, save=False, find="find_membership")
    report_skipped(answers)  # a relay that refused or was down while another applied it
    return answers


@main.command()
@click.argument("member")
@click.option("--ban", is_flag=True, help="Refuse every later join by this member's key.")
@click.option("--delete-posts", is_flag=True, help="Delete the member's posts too.")
@click.option("--reason", default="", help="Shown to members with the removal (at most 500 characters).")
@group_option
@state_option
def remove(member, ban, delete_posts, reason, which, state_path) -> None:
    """Remove MEMBER from the group on every relay (an owner or a moderator): its open
    streams end at once, and it reads and posts nothing more. MEMBER is named as
    `chatrelay members` shows it: NAME, NAME#FINGERPRINT, or the member's key."""
    from chatrelay import moderators

    _as_moderator(which, state_path, lambda who: moderators.remove(
        who, member, ban=ban, delete_posts=delete_posts, reason=reason))
    echo(f"{'banned' if ban else 'removed'}: {member}" + (", posts deleted" if delete_posts else ""))


@main.command()
@click.argument("seq", type=int)
@click.option("--reason", default="", help="Shown to members with the deletion (at most 500 characters).")
@group_option
@state_option
def delete(seq, reason, which, state_path) -> None:
    """Delete post SEQ (its number as `chatrelay read --json` shows it) on every relay (an
    owner, or a moderator for members' posts): relays serve it no more, members' clients
    hide it and say who deleted it."""
    from chatrelay import moderators

    answers = _as_moderator(which, state_path, lambda who: moderators.delete_post(who, seq, reason))
    echo(f"deleted #{seq} by {moderators.describe_post(answers.post)}")


@main.command("report")
@click.argument("seq", type=int)
@click.option("--reason", required=True, help="Why (at most 500 characters); only the owners read it.")
@group_option
@state_option
def report_post(seq, reason, which, state_path) -> None:
    """Report post SEQ (as `chatrelay read --json` shows it) to the group's owners. The
    post and the reason are sealed to the owners: no relay reads them."""
    from chatrelay import moderators

    _, answers = owned_command(which, state_path, lambda who: moderators.report(who, seq, reason), save=False,
                               find="find_joined")
    report_skipped(answers)
    echo(f"reported #{seq}")


@main.command()
@group_option
@state_option
def reports(which, state_path) -> None:
    """The reports members sent, oldest first, one a line: the reporter's fingerprint, the
    post's seq and author, the reason, and the start of the post."""
    from chatrelay import moderators

    _, found = owned_command(which, state_path, moderators.list_reports, save=False)
    for item in found:
        echo(str(item).replace("\n", " "))
    report_skipped(found)


@main.command()
@group_option
@state_option
def leave(which, state_path) -> None:
    """Leave a group or channel: every relay forgets you, and so does the state file."""
    from chatrelay import moderators
    from chatrelay.cli.base import save_state

    st = load_state(state_path)
    try:
        who = st.find_joined(which)
    except ChatRelayError as exc:
        fail(str(exc))
    report_skipped(run_async(moderators.leave(who), via=who.via))
    st.memberships.remove(who)
    save_state(state_path, st)
    echo(f"left: {who.name}")

