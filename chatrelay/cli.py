"""The `chatrelay` command line. Errors print one line to stderr and exit 2."""

from __future__ import annotations

import json
import sys

import click

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import ShortLink

EXIT_ERROR = 2
POST_RETRY_S = 10.0  # a relay restarting: the same signed post is sent again, never a new one


def fail(message: str) -> None:
    click.echo(f"chatrelay: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group()
@click.version_option(package_name="chatrelay")
def main() -> None:
    """chatrelay: relays for large public channels and groups."""


@main.group()
def link() -> None:
    """Work with short links."""


@link.command("parse")
@click.argument("text", metavar="LINK")
def link_parse(text: str) -> None:
    """Print a short link's kind, hosts and link key as JSON."""
    try:
        parsed = ShortLink.parse(text)
    except ChatRelayError as exc:
        fail(str(exc))
    click.echo(json.dumps(parsed.to_json()))


@main.command()
@click.option("--data-dir", default=None, help="Where keys and state live [CHATRELAY_DATA_DIR].")
@click.option("--listen", default=None, help="HOST:PORT of the gateway [CHATRELAY_LISTEN].")
@click.option("--etcd", default=None, help="etcd URL instead of the embedded registry [CHATRELAY_ETCD].")
@click.option("--shards", default=None, type=int, help="Relay shard actors [CHATRELAY_SHARDS].")
@click.option("--retention", default=None, type=int, help="Posts kept per group, 0 = all [CHATRELAY_RETENTION].")
@click.option("--post-limit", default=None, type=int, help="Member posts per window in groups [CHATRELAY_POST_LIMIT].")
@click.option("--post-window", default=None, type=float, help="The window, seconds [CHATRELAY_POST_WINDOW_S].")
@click.option("--max-groups", default=None, type=int, help="Groups this relay serves at most, 0 = no limit [CHATRELAY_MAX_GROUPS].")
@click.option("--deny-names", default=None, help="Refuse groups whose name matches this regular expression [CHATRELAY_DENY_NAMES].")
@click.option("--deny-groups", default=None, help="File of group ids (hex) to refuse, one a line [CHATRELAY_DENY_GROUPS].")
@click.option("--hot-posts", default=None, type=float,
              help="Posts/s past which a group moves to a shard of its own, 0 = never [CHATRELAY_HOT_POSTS_PER_S].")
@click.option("--hot-check", default=None, type=float,
              help="Seconds over which group rates are compared with --hot-posts [CHATRELAY_HOT_CHECK_S].")
@click.option("--subscriber-lag", default=None, type=int,
              help="Posts a stream may fall behind before it is cut off to resume from the log [CHATRELAY_SUBSCRIBER_LAG].")
@click.option("--post-in-flight", type=int, default=None,
              help="Calls carrying one group's posts a gateway has going to its shard at a time; posts "
                   "that arrive meanwhile wait and go on together "
                   "[CHATRELAY_POST_IN_FLIGHT].")
@click.option("--metrics", default=None, help="HOST:PORT to serve Prometheus metrics on [CHATRELAY_METRICS].")
@click.option("--ray-address", default=None,
              help="Join this Ray cluster (HOST:PORT or auto) instead of starting a local one [CHATRELAY_RAY_ADDRESS].")
@click.option("--advertise", default=None,
              help="HOST:PORT[,…] clients reach the gateways at, for the relay link [CHATRELAY_ADVERTISE].")
@click.option("--traces", default=None, help="Write every relay process's trace spans to this folder [CHATRELAY_TRACES].")
def up(data_dir, listen, etcd, shards, retention, post_limit, post_window, max_groups, deny_names, deny_groups,
       hot_posts, hot_check, subscriber_lag, post_in_flight, metrics, ray_address, advertise, traces) -> None:
    """Run a relay on this machine until interrupted; prints its relay link, then `ready`."""
    import signal
    import threading

    from chatrelay import settings as settings_mod
    from chatrelay.cluster import up as up_mod

    try:
        settings = settings_mod.load(
            {"data_dir": data_dir, "listen": listen, "etcd": etcd, "shards": shards, "retention": retention,
             "post_limit": post_limit, "post_window_s": post_window, "max_groups": max_groups,
             "deny_names": deny_names, "deny_groups": deny_groups, "subscriber_lag": subscriber_lag,
             "post_in_flight": post_in_flight,
             "hot_posts_per_s": hot_posts, "hot_check_s": hot_check, "metrics": metrics, "ray_address": ray_address,
             "advertise": advertise, "traces": traces}
        )
        relay = up_mod.start(settings)
    except ChatRelayError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc}")
    click.echo(relay.link)
    click.echo(f"relay serving on {', '.join(relay.addresses) or relay.target} ({settings})", err=True)
    if settings.metrics:
        click.echo(f"metrics on http://{settings.metrics}/metrics", err=True)
    click.echo("ready")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    click.echo("stopping", err=True)
    up_mod.stop(relay)


def _run(coro):
    import asyncio

    try:
        return asyncio.run(coro)
    except ChatRelayError as exc:
        fail(str(exc))


def _state_option(fn):
    return click.option(
        "--state", "state_path", required=True, type=click.Path(dir_okay=False),
        help="This identity's state file; created if absent.",
    )(fn)


def _load_state(path):
    import pathlib

    from chatrelay import state as state_mod

    try:
        return state_mod.load(pathlib.Path(path))
    except ChatRelayError as exc:
        fail(str(exc))


def _save_state(path, st) -> None:
    import pathlib

    from chatrelay import state as state_mod

    try:
        state_mod.save(pathlib.Path(path), st)
    except OSError as exc:
        fail(f"cannot write state file {path}: {exc}")


@main.group()
def channel() -> None:
    """Channels: only owners post."""


@channel.command("create")
@click.option("--relay", "relays", required=True, multiple=True, help="Relay link (repeat for several relays).")
@click.option("--name", required=True, help="The channel's name.")
@click.option("--description", default="", help="A line about the channel.")
@_state_option
def channel_create(relays, name, description, state_path) -> None:
    """Make a channel, register and activate it with the relays, print its link."""
    from chatrelay import client
    from chatrelay.group import GroupKind

    st = _load_state(state_path)
    owned = _run(client.create_group(list(relays), name, GroupKind.CHANNEL, description=description))
    st.owned.append(owned)
    _save_state(state_path, st)
    click.echo(owned.link)


@main.group("group")
def group_cmd() -> None:
    """Groups: members post within their role and rate limits."""


@group_cmd.command("create")
@click.option("--relay", "relays", required=True, multiple=True, help="Relay link (repeat for several relays).")
@click.option("--name", required=True, help="The group's name.")
@click.option("--join", "join_policy", type=click.Choice(["open", "approval", "invite"]), default="open",
              show_default=True, help="Who may join.")
@click.option("--description", default="", help="A line about the group.")
@click.option("--direct-messages/--no-direct-messages", default=False, show_default=True,
              help="Whether members may open direct connections to each other through the group.")
@_state_option
def group_create(relays, name, join_policy, description, direct_messages, state_path) -> None:
    """Make a group, register and activate it with the relays, print its link."""
    from chatrelay import client
    from chatrelay.group import GroupKind, JoinPolicy

    st = _load_state(state_path)
    owned = _run(client.create_group(
        list(relays), name, GroupKind.GROUP, JoinPolicy(join_policy), description, direct_messages
    ))
    st.owned.append(owned)
    _save_state(state_path, st)
    click.echo(owned.link)


def _owned_command(which, state_path, action, save=True):
    st = _load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    result = _run(action(owned))
    if save:
        _save_state(state_path, st)
    return owned, result


_group_option = click.option("--group", "which", default=None, help="Name or link, when the state file owns several.")


@main.group()
def relay() -> None:
    """The relays of a group or channel you own."""


@relay.command("add")
@click.argument("relay_link", metavar="RELAY_LINK")
@_group_option
@_state_option
def relay_add(relay_link, which, state_path) -> None:
    """Register with one more relay (idempotent) and publish it in the profile."""
    from chatrelay import client

    _, entry = _owned_command(which, state_path, lambda owned: client.add_relay(owned, relay_link))
    click.echo(f"{entry.relay_link} {entry.address} {entry.state}")


@main.command()
@_group_option
@_state_option
def relays(which, state_path) -> None:
    """One line per relay: relay link, group address, state."""
    st = _load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    for entry in owned.relays:
        click.echo(f"{entry.relay_link} {entry.address} {entry.state}")


@main.command()
@_group_option
@_state_option
def pending(which, state_path) -> None:
    """Join requests waiting for approval: request id and the member's name."""
    from chatrelay import client

    _, items = _owned_command(which, state_path, client.pending, save=False)
    for item in items:
        click.echo(str(item))


def _decide(request_id, which, state_path, approve_it: bool) -> None:
    from chatrelay import client

    _owned_command(which, state_path, lambda owned: client.decide(owned, request_id, approve_it))
    click.echo("approved" if approve_it else "rejected")


@main.command()
@click.argument("request_id")
@_group_option
@_state_option
def approve(request_id, which, state_path) -> None:
    """Approve a pending join request by its id."""
    _decide(request_id, which, state_path, True)


@main.command()
@click.argument("request_id")
@_group_option
@_state_option
def reject(request_id, which, state_path) -> None:
    """Reject a connection request at your addresses, or a group's pending join request."""
    from chatrelay import contacts

    st = _load_state(state_path)
    for addr in st.addresses:
        if any(item["id"] == request_id for item in _run(contacts.requests(addr))):
            contacts.reject(addr, request_id)
            _save_state(state_path, st)
            click.echo("rejected")
            return
    _decide(request_id, which, state_path, False)


@main.command()
@_group_option
@_state_option
def suspend(which, state_path) -> None:
    """Stop taking new members on every relay of the group."""
    from chatrelay import client

    _owned_command(which, state_path, client.suspend)
    click.echo("suspended: new members are refused")


@main.command()
@_group_option
@_state_option
def resume(which, state_path) -> None:
    """Take new members again."""
    from chatrelay import client

    _owned_command(which, state_path, client.resume)
    click.echo("resumed")


@main.command("log")
@_group_option
@_state_option
def service_log(which, state_path) -> None:
    """The group's service log on each relay: every owner command, once."""
    from chatrelay import client
    from chatrelay.v1 import relay_pb2

    _, entries = _owned_command(which, state_path, client.service_log, save=False)
    for entry, item in entries:
        body = relay_pb2.OwnerCommandBody.FromString(item.command.body)
        kind = relay_pb2.OwnerCommandKind.Name(body.kind).removeprefix("OWNER_COMMAND_KIND_").lower()
        click.echo(f"{entry.address} #{item.seq} {kind} {body.command_id.hex()}")


@main.command()
@click.argument("text")
@click.option("--group", "which", default=None, help="Name or link, when the state file owns several.")
@_state_option
def post(text, which, state_path) -> None:
    """Post TEXT to a group you are in or a channel you own (signed by your key)."""
    from chatrelay import client

    st = _load_state(state_path)
    try:
        owned = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))
    acks = _run(client.post(owned, text, retry_for_s=POST_RETRY_S))
    click.echo(f"posted #{acks[0].seq}")


@main.group()
def invite() -> None:
    """Invite codes, made offline by an owner."""


def parse_duration(text: str) -> int:
    """`90`, `90s`, `30m`, `12h`, `7d` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit() or int(number) <= 0:
        raise ChatRelayError(Reason.MALFORMED, f"--expires must look like 90s, 30m, 12h or 7d, got {text!r}")
    return int(number) * units[unit]


@invite.command("create")
@click.option("--uses", default=1, show_default=True, type=int, help="How many joins the code allows.")
@click.option("--expires", default=None, help="Valid for this long: 90s, 30m, 12h, 7d (default: no expiry).")
@_group_option
@_state_option
def invite_create(uses, expires, which, state_path) -> None:
    """Print an invite code for a group you own; made offline, consumed by the relay."""
    from chatrelay import client

    st = _load_state(state_path)
    try:
        owned = st.find_owned(which)
        code = client.make_invite(owned, uses=uses, expires_in_s=parse_duration(expires) if expires else 0)
    except ChatRelayError as exc:
        fail(str(exc))
    click.echo(code)


@main.command()
@click.argument("link_text", metavar="LINK_OR_CODE")
@click.option("--name", default="", help="Your display name in this group.")
@_state_option
def join(link_text, name, state_path) -> None:
    """Resolve and verify a group or channel link (or an invite code), then join."""
    from chatrelay import client

    st = _load_state(state_path)
    membership = _run(client.join(link_text, name))
    st.memberships = [m for m in st.memberships if m.group_id != membership.group_id] + [membership]
    _save_state(state_path, st)
    state = {
        "member": "joined",
        "pending": "waiting for the owners to approve",
        "held": "held by the relay until the group is active",
    }[membership.status]
    click.echo(f"{state}: {membership.name}")


@main.command()
@click.option("--group", "which", default=None, help="Name or link, when the state file has several.")
@click.option("--follow", is_flag=True, help="Keep streaming new posts; resumes after reconnects.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@_state_option
def read(which, follow, as_json, state_path) -> None:
    """Print the posts of a group or channel, oldest first, one a line."""
    from chatrelay import client

    st = _load_state(state_path)
    try:
        who = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))

    def show(p) -> None:
        if as_json:
            click.echo(json.dumps(p.to_json()))
        else:
            click.echo(p.text.replace("\\", "\\\\").replace("\n", "\\n"))
        sys.stdout.flush()

    async def run() -> None:
        if follow:
            async for p in client.follow(who):
                show(p)
        else:
            for p in await client.read_all(who):
                show(p)

    try:
        _run(run())
    except KeyboardInterrupt:
        pass


# ---- 1:1 connections -------------------------------------------------------------------


def _unique_name(st, name: str) -> str:
    taken = {c.name for c in st.contacts}
    if name not in taken:
        return name
    for i in range(2, 10_000):
        if f"{name} {i}" not in taken:
            return f"{name} {i}"
    return name


@main.group()
def address() -> None:
    """Contact addresses: multi-use links people connect to."""


@address.command("create")
@click.option("--relay", "relay_link", required=True, help="The relay that holds the address.")
@click.option("--name", default="", help="The name people see when they connect.")
@_state_option
def address_create(relay_link, name, state_path) -> None:
    """Make a multi-use contact address and print its short link."""
    _create_address(relay_link, name, state_path, one_time=False)


def _create_address(relay_link, name, state_path, one_time: bool) -> None:
    from chatrelay import contacts

    st = _load_state(state_path)
    made = _run(contacts.create_address(relay_link, name, one_time=one_time))
    st.addresses.append(made)
    _save_state(state_path, st)
    click.echo(made.link)


@main.group()
def invitation() -> None:
    """One-time invitations: links that lock on first use."""


@invitation.command("create")
@click.option("--relay", "relay_link", required=True, help="The relay that holds the invitation.")
@click.option("--name", default="", help="The name the invitee sees.")
@_state_option
def invitation_create(relay_link, name, state_path) -> None:
    """Make a one-time invitation and print its short link."""
    _create_address(relay_link, name, state_path, one_time=True)


@main.command()
@click.argument("link_text", metavar="LINK")
@click.option("--name", default="", help="Your name, as the other side will see it.")
@click.option("--message", default="", help="A first message, delivered with the request.")
@_state_option
def connect(link_text, name, message, state_path) -> None:
    """Ask to connect through a contact address or one-time invitation."""
    from chatrelay import contacts

    st = _load_state(state_path)
    contact = _run(contacts.connect(link_text, name, message))
    contact.name = _unique_name(st, contact.name)
    st.contacts.append(contact)
    _save_state(state_path, st)
    click.echo(f"request sent to {contact.name}; it waits on the relay until they accept")


@main.command()
@_state_option
def requests(state_path) -> None:
    """Connection requests waiting at your addresses: ID, name, first message."""
    from chatrelay import contacts

    st = _load_state(state_path)
    for addr in st.addresses:
        for item in _run(contacts.requests(addr)):
            if item["status"] == "waiting":
                click.echo(f"{item['id']} {item['name'] or '(no name)'}: {item['message']}")


def _find_request(st, request_id):
    from chatrelay import contacts

    for addr in st.addresses:
        if any(item["id"] == request_id for item in _run(contacts.requests(addr))):
            return addr
    fail(f"no connection request {request_id} at your addresses (unknown_address)")


@main.command("accept")
@click.argument("request_id", metavar="ID")
@_state_option
def accept_cmd(request_id, state_path) -> None:
    """Accept a connection request: you become contacts."""
    from chatrelay import contacts

    st = _load_state(state_path)
    addr = _find_request(st, request_id)
    contact = _run(contacts.accept(addr, request_id))
    contact.name = _unique_name(st, contact.name)
    st.contacts.append(contact)
    _save_state(state_path, st)
    click.echo(f"connected: {contact.name}")


@main.command("contacts")
@_state_option
def contacts_cmd(state_path) -> None:
    """Your contacts, one a line: name and status."""
    st = _load_state(state_path)
    for c in st.contacts:
        click.echo(f"{c.name}\t{c.status}")


@main.command()
@click.argument("contact_name", metavar="CONTACT")
@click.argument("text")
@_state_option
def send(contact_name, text, state_path) -> None:
    """Send TEXT to a contact, end-to-end encrypted."""
    from chatrelay import contacts

    st = _load_state(state_path)
    try:
        contact = st.find_contact(contact_name)
    except ChatRelayError as exc:
        fail(str(exc))
    _run(contacts.send(contact, text))
    click.echo("sent")


@main.command()
@click.argument("member")
@click.argument("text")
@click.option("--group", "which", default=None, help="Name or link, when the state file has several groups.")
@_state_option
def dm(member, text, which, state_path) -> None:
    """Message MEMBER of a group directly (a name, or an author key from `read --json`).

    The first time, this sends a direct invitation through the group, where the group
    allows direct messages; TEXT arrives with it. Later, it uses the direct connection.
    """
    from chatrelay import contacts

    st = _load_state(state_path)
    for contact in st.contacts:
        if member not in (contact.name, contact.member):
            continue
        if contact.status == "waiting":  # the acceptance may be in my queue already
            for line in _run(contacts.inbox(contact)):
                click.echo(f"{contact.name}: {line}")
        if contact.status == "connected":
            _run(contacts.send(contact, text))
            _save_state(state_path, st)
            click.echo("sent")
            return
    try:
        who = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))
    invitation_ = _run(contacts.send_direct_invitation(who, member, text))
    st.addresses.append(invitation_)
    _save_state(state_path, st)
    click.echo(f"direct invitation sent to {member}; your message travels with it")


@main.command()
@click.option("--follow", is_flag=True, help="Keep waiting for new messages.")
@_state_option
def inbox(follow, state_path) -> None:
    """New messages from your contacts: `NAME: text`, one a line."""
    import time as time_mod

    from chatrelay import contacts

    while True:
        st = _load_state(state_path)
        for membership in st.memberships:
            if membership.kind != "group" or membership.status != "member":
                continue
            for contact, first in _run(contacts.direct_invitations(membership)):
                contact.name = _unique_name(st, contact.name)
                st.contacts.append(contact)
                click.echo(f"{contact.name}: {first}" if first else f"{contact.name} wants to talk directly")
        for addr in st.addresses:
            if addr.auto_accept:
                for contact in _run(contacts.accept_direct(addr)):
                    contact.name = _unique_name(st, contact.name)
                    st.contacts.append(contact)
                    click.echo(f"{contact.name} connected directly")
        for contact in st.contacts:
            for text in _run(contacts.inbox(contact)):
                click.echo(f"{contact.name}: {text}")
                sys.stdout.flush()
        _save_state(state_path, st)
        if not follow:
            return
        try:
            time_mod.sleep(1.0)
        except KeyboardInterrupt:
            return



# ---- operators ----------------------------------------------------------------------------


def _admin_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option("--operator-key", "key_path", default=None,
                      help="The operator key file [default: operator.key in the data dir].")(fn)
    fn = click.option("--relay", "relay_link", default=None,
                      help="The relay's link [default: the one `chatrelay up` wrote in the data dir].")(fn)
    fn = click.option("--data-dir", default=None, help="The relay's data dir [CHATRELAY_DATA_DIR].")(fn)
    return fn


def _admin_client(data_dir, relay_link, key_path):
    """The gateway to ask and the key to sign with, from the flags or the data dir."""
    import os
    import pathlib

    from chatrelay import admin_client
    from chatrelay.client import target_of_link
    from chatrelay.cluster import identity

    folder = pathlib.Path(data_dir or os.environ.get("CHATRELAY_DATA_DIR") or "chatrelay-data")
    try:
        key = identity.load_key(pathlib.Path(key_path) if key_path else folder / identity.OPERATOR_KEY_FILE)
        if relay_link is None:
            path = folder / identity.LINK_FILE
            try:
                relay_link = path.read_text().strip()
            except OSError:
                fail(f"no relay link in {path}: pass --relay LINK, or --data-dir of a relay started with `chatrelay up`")
        link = ShortLink.parse(relay_link)
    except ChatRelayError as exc:
        fail(str(exc))
    return admin_client.AdminClient(target_of_link(link), key)


def _window(value: float) -> float:
    if not 0.1 <= value <= 10:
        fail(f"--window must be 0.1 to 10 seconds, got {value:g}")
    return value


@main.command()
@_admin_options
@click.option("--window", default=1.0, show_default=True, type=float, help="Seconds over which rates are measured.")
def status(data_dir, relay_link, key_path, as_json, window) -> None:
    """The relay cluster: shards, gateways, groups, subscribers, rates and health."""
    async def run():
        async with _admin_client(data_dir, relay_link, key_path) as c:
            return await c.status(_window(window))
    out = _run(run())
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"health {out['health']}: {out['nodes']} Ray node(s), registry {out['registry']}")
    click.echo(f"groups {out['groups']} registered, {out['groups_loaded']} loaded; "
               f"subscribers {out['subscribers']}")
    click.echo(f"posts {out['posts_per_second']:.1f}/s, deliveries {out['deliveries_per_second']:.1f}/s "
               f"(over {out['window_seconds']:.1f} s)")
    for s in out["shards"]:
        if not s["healthy"]:
            click.echo(f"shard {s['shard_id']}: NOT ANSWERING ({s['error']})")
            continue
        click.echo(f"shard {s['shard_id']}: {s['groups']} groups, {s['posts_per_second']:.1f} posts/s, "
                   f"mailboxes {s['mailbox_depth']}, {s['rss_bytes'] / 2**20:.0f} MiB, node {s['node_id'][:8]}")
    for i, g in enumerate(out["gateways"]):
        if not g["healthy"]:
            click.echo(f"gateway {i}: NOT ANSWERING ({g['error']})")
            continue
        click.echo(f"gateway {i}: {g['subscribers']} subscribers, {g['deliveries_per_second']:.1f} deliveries/s, "
                   f"{g['cut_off']} cut off, node {g['node_id'][:8]}")


def _top_table(out: dict):
    from rich.table import Table

    table = Table(title=f"busiest groups (rates over {out['window_seconds']:.1f} s)")
    for name in ("group address", "shard", "posts/s", "deliveries/s", "subscribers", "mailbox", "last seq",
                 "members", "state"):
        table.add_column(name, justify="left" if name in ("group address", "state") else "right")
    for g in out["groups"]:
        table.add_row(g["group_address"], g["shard_id"], f"{g['posts_per_second']:.1f}",
                      f"{g['deliveries_per_second']:.1f}", str(g["subscribers"]), str(g["mailbox_depth"]),
                      str(g["last_seq"]), str(g["members"]), g["state"])
    return table


@main.command()
@_admin_options
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="Groups listed.")
@click.option("--window", default=1.0, show_default=True, type=float, help="Seconds over which rates are measured.")
@click.option("--count", default=0, type=click.IntRange(0), help="Refresh this many times, then stop (0: until Ctrl-C).")
def top(data_dir, relay_link, key_path, as_json, limit, window, count) -> None:
    """A live table of the busiest groups; with --json, one reading."""
    window = _window(window)

    async def once(c):
        return await c.top(limit, window)

    if as_json:
        async def run():
            async with _admin_client(data_dir, relay_link, key_path) as c:
                return await once(c)
        click.echo(json.dumps(_run(run()), indent=2))
        return

    from rich.console import Console
    from rich.live import Live

    async def live():
        async with _admin_client(data_dir, relay_link, key_path) as c:
            with Live(console=Console(), auto_refresh=False) as view:
                shown = 0
                while count == 0 or shown < count:
                    view.update(_top_table(await once(c)), refresh=True)
                    shown += 1
    try:
        _run(live())
    except KeyboardInterrupt:
        pass


@main.command()
@_admin_options
@click.argument("address")
@click.option("--shard", "to_shard", required=True, type=click.IntRange(0), help="The shard index it moves to.")
def move(data_dir, relay_link, key_path, as_json, address, to_shard) -> None:
    """Move a group to another relay shard (no post is lost or reordered)."""
    async def run():
        async with _admin_client(data_dir, relay_link, key_path) as c:
            return await c.move(address, to_shard)
    out = _run(run())
    click.echo(json.dumps(out) if as_json else f"group {address} is served by shard {out['shard_id']}")


if __name__ == "__main__":
    main()
