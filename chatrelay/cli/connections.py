"""Commands for 1:1 connections: contact addresses, one-time invitations, requests, messages, and direct invitations through a group."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import click

from chatrelay.cli.base import echo, fail, load_state, main, report_skipped, run_async, save_state, state_option
from chatrelay.errors import ChatRelayError, Reason


def _address_commands(name: str, one_time: bool, about: str, holds: str, shown: str, made: str) -> None:
    """`chatrelay NAME create`: a contact address, or a one-time invitation."""
    @main.group(name, help=about)
    def kind() -> None:
        pass

    @kind.command("create", help=made)
    @click.option("--relay", "relay_links", multiple=True,
                  help=f"A relay that holds the {holds} (repeat for several: a request reaches you through any) "
                       "[default: the relays of `chatrelay relays config`].")
    @click.option("--name", default="", help=shown)
    @state_option
    def create(relay_links, name, state_path) -> None:
        from chatrelay import contacts
        from chatrelay.cli.relays import relays_for

        st = load_state(state_path)
        address = run_async(contacts.create_address(relays_for(st, relay_links), name, one_time=one_time))
        st.addresses.append(address)
        save_state(state_path, st)
        echo(address.link)


_address_commands("address", False, "Contact addresses: multi-use links people connect to.", "address",
                  "The name people see when they connect.", "Make a multi-use contact address and print its short link.")
_address_commands("invitation", True, "One-time invitations: links that lock on first use.", "invitation",
                  "The name the invitee sees.", "Make a one-time invitation and print its short link.")


@main.command()
@click.argument("link_text", metavar="LINK")
@click.option("--name", default="", help="Your name, as the other side will see it.")
@click.option("--message", default="", help="A first message, delivered with the request.")
@state_option
def connect(link_text, name, message, state_path) -> None:
    """Ask to connect through a contact address or one-time invitation."""
    from chatrelay import contacts
    from chatrelay.cli.relays import refuse_relay_link

    refuse_relay_link(link_text, state_path, "a contact address or invitation")
    st = load_state(state_path)
    contact = run_async(contacts.connect(link_text, name, message))
    contact.name = st.unique_contact_name(contact.name)
    st.contacts.append(contact)
    save_state(state_path, st)
    echo(f"request sent to {contact.name}; it waits on the relay until they accept")


@main.command()
@state_option
def requests(state_path) -> None:
    """Connection requests waiting at your addresses: ID, name, first message."""
    from chatrelay import contacts

    st = load_state(state_path)
    for addr in st.addresses:
        found = run_async(contacts.requests(addr))
        for item in found:
            if item["status"] == "waiting":
                echo(f"{item['id']} {item['name'] or '(no name)'}: {item['message']}")
        report_skipped(found)
    save_state(state_path, st)  # a request that does not open is reported once


def _find_request(st, request_id):
    from chatrelay import contacts

    for addr in st.addresses:
        if any(item["id"] == request_id for item in run_async(contacts.requests(addr))):
            return addr
    fail(f"no connection request {request_id} at your addresses (unknown_address)")


@main.command("accept")
@click.argument("request_id", metavar="ID")
@state_option
def accept_cmd(request_id, state_path) -> None:
    """Accept a connection request: you become contacts."""
    from chatrelay import contacts

    st = load_state(state_path)
    addr = _find_request(st, request_id)
    contact = run_async(contacts.accept(addr, request_id))
    contact.name = st.unique_contact_name(contact.name)
    st.contacts.append(contact)
    save_state(state_path, st)
    echo(f"connected: {contact.name}")


@main.command("contacts")
@state_option
def contacts_cmd(state_path) -> None:
    """Your contacts, one a line: name and status."""
    st = load_state(state_path)
    for c in st.contacts:
        echo(f"{c.name}\t{c.status}")


@main.command()
@click.argument("contact_name", metavar="CONTACT")
@click.argument("text")
@state_option
def send(contact_name, text, state_path) -> None:
    """Send TEXT to a contact, end-to-end encrypted."""
    from chatrelay import contacts

    st = load_state(state_path)
    try:
        contact = st.find_contact(contact_name)
    except ChatRelayError as exc:
        fail(str(exc))
    run_async(contacts.send(contact, text))
    echo("sent")


@main.command()
@click.argument("member")
@click.argument("text")
@click.option("--group", "which", default=None, help="Name or link, when the state file has several groups.")
@state_option
def dm(member, text, which, state_path) -> None:
    """Message MEMBER of a group directly: a name, NAME#FINGERPRINT where several members
    have the name, or an author key from `read --json`.

    The first time, this sends a direct invitation through the group, where the group
    allows direct messages; TEXT arrives with it. Later, it uses the direct connection.
    `chatrelay dm accept ID` consents to a direct invitation `inbox` listed: only then
    does this client connect to the inviting member.
    """
    from chatrelay import contacts, direct

    st = load_state(state_path)
    if member == "accept":
        _accept_invitation(st, text, state_path)
        return
    for contact in st.contacts:
        if member not in (contact.name, contact.member):
            continue
        if contact.status == "waiting":  # the acceptance may be in my queue already
            for line in run_async(contacts.inbox(contact)):
                echo(f"{contact.name}: {line}")
        if contact.status == "connected":
            run_async(contacts.send(contact, text))
            save_state(state_path, st)
            echo("sent")
            return
    try:
        who = st.find_membership(which)
    except ChatRelayError as exc:
        fail(str(exc))
    invitation_ = run_async(direct.send_direct_invitation(who, member, text))
    st.addresses.append(invitation_)
    save_state(state_path, st)
    echo(f"direct invitation sent to {member}; your message travels with it")


def _accept_invitation(st, invitation_id: str, state_path) -> None:
    from chatrelay import direct

    for membership in st.memberships:
        if any(i.id == invitation_id for i in membership.invitations):
            contact = run_async(direct.accept_invitation(membership, invitation_id))
            contact.name = st.unique_contact_name(contact.name)
            st.contacts.append(contact)
            save_state(state_path, st)
            echo(f"connecting to {contact.name}; what they send arrives in `chatrelay inbox`")
            return
    fail(str(ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no direct invitation {invitation_id!r} waiting; "
                                                      "`chatrelay inbox` lists them")))


INBOX_PERIOD_S = 1.0  # how often --follow polls each group and queue, on average


@main.command()
@click.option("--follow", is_flag=True, help="Keep waiting for new messages.")
@state_option
def inbox(follow, state_path) -> None:
    """New messages from your contacts, `NAME: text`, one a line, and direct invitations
    from members of your groups.

    With --follow, each group and queue is polled about once a second, each at a random
    phase of its own, so a relay cannot tie them together by when they are polled.
    """
    import time as time_mod

    from chatrelay.retry import Spread

    if not follow:
        st = load_state(state_path)
        for _, poll in _inbox_items(st):
            poll()
        save_state(state_path, st)
        return
    spread = Spread(INBOX_PERIOD_S)
    while True:
        st = load_state(state_path)  # read anew: another command may have changed it
        items = dict(_inbox_items(st))
        key, wait = spread.next(items, time_mod.monotonic())
        if key is not None:
            items[key]()
            save_state(state_path, st)
            continue
        try:
            time_mod.sleep(wait)
        except KeyboardInterrupt:
            return


def _inbox_items(st) -> list[tuple[str, Callable[[], None]]]:
    """What `inbox` polls, each by a key of its own: the direct invitations of each group,
    the acceptances of direct invitations sent, each contact's queue."""
    from chatrelay import contacts, direct

    def invitations(membership) -> None:
        got = run_async(direct.direct_invitations(membership))
        for invitation in got:
            said = f": {invitation.message}" if invitation.message else ""
            echo(f"{invitation.name or 'a member'} invites you to talk directly{said} "
                       f"(chatrelay dm accept {invitation.id})")
        report_skipped(got)

    def accepted(addr) -> None:
        for contact in run_async(direct.accept_direct(addr)):
            contact.name = st.unique_contact_name(contact.name)
            st.contacts.append(contact)
            echo(f"{contact.name} connected directly")

    def messages(contact) -> None:
        texts = run_async(contacts.inbox(contact))
        for text in texts:
            echo(f"{contact.name}: {text}")
            sys.stdout.flush()
        report_skipped(texts)

    return [
        *((f"group {m.group_id}", functools.partial(invitations, m)) for m in st.memberships
          if m.kind == "group" and m.status == "member"),
        *((f"address {a.queue}", functools.partial(accepted, a)) for a in st.addresses if a.auto_accept),
        *((f"contact {c.my_queue}", functools.partial(messages, c)) for c in st.contacts),
    ]
