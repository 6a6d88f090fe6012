"""Commands for groups and channels: create, post, join, read, and what owners decide."""

from __future__ import annotations

import json
import sys

import click

from chatrelay.cli.base import (
    echo,
    fail, group_option, load_state, main, owned_command, report_skipped, run_async, save_state, state_option,
)
from chatrelay.cli.relays import refuse_relay_link, relays_for
from chatrelay.errors import ChatRelayError, Reason

POST_RETRY_S = 10.0  # a relay restarting: the same signed post is sent again, never a new one


@main.group()
def channel() -> None:
    """Channels: only owners post."""


@channel.command("create")
@click.option("--relay", "relays", multiple=True,
              help="Relay link (repeat for several relays) [default: the relays of `chatrelay relays config`].")
@click.option("--name", required=True, help="The channel's name.")
@click.option("--description", default="", help="A line about the channel.")
@state_option
def channel_create(relays, name, description, state_path) -> None:
    """Make a channel, register and activate it with the relays, print its link."""
    from chatrelay import client
    from chatrelay.group import GroupKind

    st = load_state(state_path)
    owned = run_async(client.create_group(relays_for(st, relays), name, GroupKind.CHANNEL, description=description))
    st.owned.append(owned)
    save_state(state_path, st)
    echo(owned.link)


@main.group("group")
def group_cmd() -> None:
    """Groups: members post within their role and rate limits."""


@group_cmd.command("create")
@click.option("--relay", "relays", multiple=True,
              help="Relay link (repeat for several relays) [default: the relays of `chatrelay relays config`].")
@click.option("--name", required=True, help="The group's name.")
@click.option("--join", "join_policy", type=click.Choice(["open", "approval", "invite"]), default="open",
              show_default=True, help="Who may join.")
@click.option("--description", default="", help="A line about the group.")
@click.option("--direct-messages/--no-direct-messages", default=False, show_default=True,
              help="Whether members may open direct connections to each other through the group.")
@state_option
def group_create(relays, name, join_policy, description, direct_messages, state_path) -> None:
    """Make a group, register and activate it with the relays, print its link."""
    from chatrelay import client
    from chatrelay.group import GroupKind, JoinPolicy

    st = load_state(state_path)
    owned = run_async(client.create_group(
        relays_for(st, relays), name, GroupKind.GROUP, JoinPolicy(join_policy), description, direct_messages
    ))
    st.owned.append(owned)
    save_state(state_path, st)
    echo(owned.link)



@group_cmd.command("delete")
@group_option
@state_option
def group_delete(which, state_path) -> None:
    """Delete a group or channel you own: every relay stops serving it and drops its
    posts, and the state file forgets it."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    run_async(client.delete_group(owned))
    st.owned.remove(owned)
    save_state(state_path, st)
    echo(f"deleted: {owned.name}")


@main.group()
def profile() -> None:
    """The profile of a group or channel you own: name, description, settings."""


@profile.command("set")
@click.option("--name", default=None, help="A new name.")
@click.option("--description", default=None, help="A new description.")
@click.option("--join", "join_policy", type=click.Choice(["open", "approval", "invite"]), default=None,
              help="Who may join.")
@click.option("--direct-messages", type=click.Choice(["on", "off"]), default=None,
              help="Whether members may open direct connections to each other through the group.")
@click.option("--slow-mode", default=None,
              help="Rule: at least this long between one member's posts: 30s, 5m, 1h; 0 turns it off.")
@click.option("--max-post", "max_post", type=int, default=None,
              help="Rule: a member's post is at most this many bytes (0: the protocol's 16 KiB).")
@click.option("--links", type=click.Choice(["on", "off"]), default=None, help="Rule: whether members' posts may carry links.")
@group_option
@state_option
def profile_set(name, description, join_policy, direct_messages, slow_mode, max_post, links, which, state_path) -> None:
    """Sign the next profile version with the changes and publish it: every relay puts it
    in the group's stream, where members check and apply it. The rules bind members'
    posts (owners and moderators are free): relays refuse a post that breaks one, and
    members refuse one a relay let through."""
    if all(v is None for v in (name, description, join_policy, direct_messages, slow_mode, max_post, links)):
        fail("nothing to change: give --name, --description, --join, --direct-messages, --slow-mode, "
             "--max-post or --links")
    try:
        slow_mode_s = None if slow_mode is None else parse_duration(slow_mode, "--slow-mode", zero=True)
    except ChatRelayError as exc:
        fail(str(exc))
    from chatrelay import client
    from chatrelay.group import JoinPolicy

    def on(flag):
        return None if flag is None else flag == "on"
    owned, published = owned_command(which, state_path, lambda owned: client.set_profile(
        owned, name=name, description=description, join=None if join_policy is None else JoinPolicy(join_policy),
        direct_messages=on(direct_messages), slow_mode_s=slow_mode_s, max_post_bytes=max_post, links=on(links)))
    echo(f"profile v{published.version}: {owned.name}")
    report_skipped(published)


@main.command()
@group_option
@state_option
def pending(which, state_path) -> None:
    """Join requests waiting for approval: request id and the member's name, with its key's
    fingerprint (NAME#FINGERPRINT) where several have the name."""
    from collections import Counter

    from chatrelay import client, direct

    _, items = owned_command(which, state_path, client.pending, save=False)
    names = Counter(item.display_name for item in items)
    for item in items:
        shared = names[item.display_name] > 1
        echo(f"{item}#{direct.fingerprint(item.sign_key)}" if shared else str(item))
    report_skipped(items)


def _decide(request_id, which, state_path, approve_it: bool, reason: str = "") -> None:
    from chatrelay import client

    owned_command(which, state_path, lambda owned: client.decide(owned, request_id, approve_it, reason))
    echo("approved" if approve_it else "rejected")


@main.command()
@click.argument("request_id")
@group_option
@state_option
def approve(request_id, which, state_path) -> None:
    """Approve a pending join request by its id."""
    _decide(request_id, which, state_path, True)


@main.command()
@click.argument("request_id")
@click.option("--reason", default="", help="For a join request: what the member is told (at most 500 characters).")
@group_option
@state_option
def reject(request_id, reason, which, state_path) -> None:
    """Reject a connection request at your addresses, or a group's pending join request."""
    from chatrelay import contacts

    st = load_state(state_path)
    for addr in st.addresses:
        if any(item["id"] == request_id for item in run_async(contacts.requests(addr))):
            contacts.reject(addr, request_id)
            save_state(state_path, st)
            echo("rejected")
            return
    _decide(request_id, which, state_path, False, reason)


@main.command()
@group_option
@state_option
def suspend(which, state_path) -> None:
    """Stop taking new members on every relay of the group."""
    from chatrelay import client

    owned_command(which, state_path, client.suspend)
    echo("suspended: new members are refused")


@main.command()
@group_option
@state_option
def resume(which, state_path) -> None:
    """Take new members again."""
    from chatrelay import client

    owned_command(which, state_path, client.resume)
    echo("resumed")


@main.command("log")
@group_option
@state_option
def service_log(which, state_path) -> None:
    """The group's service log on each relay: every owner command, once, with what it did,
    and the relay's own notices (joins and posts it refused, a takedown, a restore)."""
    from chatrelay import client
    from chatrelay.v1 import relay_pb2

    _, entries = owned_command(which, state_path, client.service_log, save=False)
    for entry, item in entries:
        if item.HasField("notice"):  # the relay's own word
            echo(f"{entry.address} #{item.seq} relay: {item.notice.kind}"
                       + (f": {item.notice.text}" if item.notice.text else ""))
            continue
        body = relay_pb2.OwnerCommandBody.FromString(item.command.body)
        kind = relay_pb2.OwnerCommandKind.Name(body.kind).removeprefix("OWNER_COMMAND_KIND_").lower()
        echo(f"{entry.address} #{item.seq} {kind} {body.command_id.hex()}: {item.outcome}")


@main.command()
@click.argument("text")
@click.option("--group", "which", default=None, help="Name or link, when the state file owns several.")
@state_option
def post(text, which, state_path) -> None:
    """Post TEXT to a group you are in or a channel you own (signed by your key)."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        owned = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))
    acks = run_async(client.post(owned, text, retry_for_s=POST_RETRY_S), via=getattr(owned, "via", ""))
    echo(f"posted #{acks[0].seq}")
    report_skipped(acks)  # a relay that refused it while another took it


def parse_duration(text: str, option: str = "--expires", zero: bool = False) -> int:
    """`90`, `90s`, `30m`, `12h`, `7d` -> seconds (with `zero`, `0` too)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isascii() or not number.isdigit() or (int(number) == 0 and not zero):
        raise ChatRelayError(Reason.MALFORMED, f"{option} must look like 90s, 30m, 12h or 7d, got {text!r}")
    return int(number) * units[unit]


@main.command()
@click.argument("link_text", metavar="LINK_OR_CODE")
@click.option("--name", default="", help="Your display name in this group.")
@click.option("--via", default=None, metavar="RELAY_LINK",
              help="Reach the group's relays through this relay's forwarding, for this and every later read and "
                   "post, so they never see your address [default: `chatrelay relays config via`]; `--via none`: directly.")
@state_option
def join(link_text, name, via, state_path) -> None:
    """Resolve and verify a group or channel link (or an invite code), then join."""
    from chatrelay import client

    refuse_relay_link(link_text, state_path, "a group or channel")
    st = load_state(state_path)
    via = st.via if via is None else ("" if via == "none" else via)
    membership = run_async(client.join(link_text, name, known=st.memberships), via=via)
    membership.via = via
    st.memberships = [m for m in st.memberships if m.group_id != membership.group_id] + [membership]
    save_state(state_path, st)
    state = {
        "member": "joined",
        "pending": "waiting for the owners to approve",
        "held": "held by the relay until the group is active",
    }[membership.status]
    echo(f"{state}: {membership.name}")


@main.command()
@click.option("--group", "which", default=None, help="Name or link, when the state file has several.")
@click.option("--follow", is_flag=True, help="Keep streaming new posts; resumes after reconnects.")
@click.option("--json", "as_json", is_flag=True, help='One JSON object a line; a post skipped as {"skipped": …}.')
@state_option
def read(which, follow, as_json, state_path) -> None:
    """Print the posts of a group or channel, oldest first, one a line."""
    from chatrelay import client

    st = load_state(state_path)
    try:
        who = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))

    def show(p) -> None:
        if as_json:
            echo(json.dumps(p.to_json()))
        else:
            echo(p.text.replace("\\", "\\\\").replace("\n", "\\n"))
        sys.stdout.flush()

    def skip(skipped) -> None:  # a post or relay that did not check out: said once, read goes on
        if as_json:
            echo(json.dumps({"skipped": skipped.to_json()}))
        else:
            echo(f"chatrelay: {skipped}", err=True)

    def changed(change) -> None:  # the owners' newer profile: applied, kept, said
        save_state(state_path, st)
        if as_json:
            echo(json.dumps(change.to_json()))
        else:
            echo(f"chatrelay: {change}", err=True)

    async def run() -> None:
        if follow:
            async for p in client.follow(who, on_skip=skip, on_change=changed):
                show(p)
        else:
            posts = await client.read_all(who)
            for change in posts.changes:
                changed(change)
            for p in posts:
                show(p)
            for skipped in posts.skipped:
                skip(skipped)

    try:
        run_async(run(), via=getattr(who, "via", ""))
    except KeyboardInterrupt:
        pass


# ---- 1:1 connections -------------------------------------------------------------------


