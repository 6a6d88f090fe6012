"""Commands for a group's owners: invite another owner over a 1:1 connection of your own,
accept such an invitation, list the owners, remove one."""

from __future__ import annotations

import click

from chatrelay.cli.base import echo, fail, group_option, load_state, main, report_skipped, run_async, save_state, state_option
from chatrelay.errors import ChatRelayError


@main.group()
def owner() -> None:
    """Owners of a group: add, accept, remove (`chatrelay owners` lists them)."""


@owner.command("add")
@click.option("--relay", "relay_links", multiple=True,
              help="A relay for the 1:1 connection with the new owner (repeat for several) "
                   "[default: the relays of `chatrelay relays config`, else the group's].")
@click.option("--name", default="", help="Your name, as the invited person sees it.")
@group_option
@state_option
def owner_add(relay_links, name, which, state_path) -> None:
    """Print a one-time owner invitation for a group you own. The invited person runs
    `chatrelay owner accept LINK`; your next `chatrelay owners` signs them in and hands the
    group over, end to end encrypted, never through the group's relays."""
    from chatrelay import co_owners

    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
        relays = list(relay_links) or [r.link for r in st.relays] or [e.relay_link for e in owned.relays]
    except ChatRelayError as exc:
        fail(str(exc))
    address = run_async(co_owners.invite(owned, relays, name))
    st.addresses.append(address)
    save_state(state_path, st)
    echo(address.link)


@owner.command("accept")
@click.argument("link_text", metavar="LINK")
@click.option("--name", default="", help="Your name, as the owner who invited you sees it.")
@state_option
def owner_accept(link_text, name, state_path) -> None:
    """Ask to become an owner through an owner invitation."""
    from chatrelay import co_owners

    st = load_state(state_path)
    contact = run_async(co_owners.ask(link_text, name))
    contact.name = st.unique_contact_name(contact.name)
    st.contacts.append(contact)
    save_state(state_path, st)
    echo(f"asked {contact.name}; you are an owner once they run `chatrelay owners` and you run it after them")


@main.command()
@group_option
@state_option
def owners(which, state_path) -> None:
    """The owners of a group you own, one a line: owner id, key fingerprint, who added
    them. First, owner invitations asked at are completed, and handovers taken up."""
    from chatrelay import co_owners

    st = load_state(state_path)
    done = run_async(co_owners.complete(st))
    save_state(state_path, st)  # what was signed and handed over is kept before anything else is tried
    taken = run_async(co_owners.take_up(st))
    save_state(state_path, st)
    for line in [*done, *taken]:
        echo(line, err=True)
    report_skipped(done)
    report_skipped(taken)
    if not st.owned and not done and not taken:
        fail("this state file owns no group or channel; make one with `chatrelay channel create` (not_a_member)")
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    found = run_async(co_owners.list_owners(owned))
    save_state(state_path, st)  # a newer profile taken from the link
    for o in found:
        echo(str(o))


@owner.command("remove")
@click.argument("which_owner", metavar="OWNER")
@group_option
@state_option
def owner_remove(which_owner, which, state_path) -> None:
    """Remove an owner (its id or key fingerprint, as `chatrelay owners` shows it): only
    the owner who added it, or one before it in the chain, may."""
    from chatrelay import co_owners

    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    published = run_async(co_owners.remove(owned, which_owner))
    save_state(state_path, st)
    echo(f"removed; profile v{co_owners.version(owned)}")
    report_skipped(published)
