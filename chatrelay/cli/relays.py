"""Commands for the relays: those of a group or channel you own (add, remove, list with
their counts) and those you chose to use (`relays config`), which groups are made with
when no --relay is given."""

from __future__ import annotations

import sys

import click

from chatrelay.cli.base import echo, fail, group_option, load_state, main, owned_command, run_async, save_state, state_option
from chatrelay.errors import ChatRelayError, Reason


@main.group()
def relay() -> None:
    """The relays of a group or channel you own."""


@relay.command("add")
@click.argument("relay_link", metavar="RELAY_LINK")
@group_option
@state_option
def relay_add(relay_link, which, state_path) -> None:
    """Register with one more relay (idempotent) and publish it in the profile."""
    from chatrelay import client

    _, entry = owned_command(which, state_path, lambda owned: client.add_relay(owned, relay_link))
    echo(f"{entry.relay_link} {entry.address} {entry.state}")


@relay.command("remove")
@click.argument("relay_link", metavar="RELAY_LINK")
@group_option
@state_option
def relay_remove(relay_link, which, state_path) -> None:
    """Tell a relay to stop serving the group, and publish the profile without it."""
    from chatrelay import client

    owned, _ = owned_command(which, state_path, lambda owned: client.remove_relay(owned, relay_link))
    echo(f"removed {relay_link}; {len(owned.relays)} relay(s) serve the group")


@main.group(invoke_without_command=True)
@group_option
@click.option("--state", "state_path", default=None, type=click.Path(dir_okay=False),
              help="This identity's state file; created if absent.")
@click.pass_context
def relays(ctx, which, state_path) -> None:
    """The relays of a group or channel you own, one a line: relay link, group address,
    state, and the members and open read streams (subscribers) the relay counts, or why
    it did not answer. `chatrelay relays config …`: the relays you chose to use."""
    if ctx.invoked_subcommand is not None:
        return
    if state_path is None:
        raise click.UsageError("Missing option '--state'.")
    from chatrelay import moderators

    _, counts = owned_command(which, state_path, lambda owned: _with_counts(owned, moderators), save=False)
    for entry, count in counts:
        said = (f"members={count.members} subscribers={count.subscribers}" if isinstance(count, moderators.RelayCounts)
                else f"unanswered: {count.message} ({count.reason})")
        echo(f"{entry.relay_link} {entry.address} {entry.state} {said}")


async def _with_counts(owned, moderators):
    return list(zip(owned.relays, await moderators.relay_counts(owned)))


@relays.group("config")
def relays_config() -> None:
    """The relays you chose to use, kept in the state file with each relay's key and TLS
    fingerprint: `channel create` and `group create` without --relay use them."""


@relays_config.command("add")
@click.argument("relay_link", metavar="RELAY_LINK")
@state_option
def relays_config_add(relay_link, state_path) -> None:
    """Check a relay (its link data, signed by its key, over TLS pinned to the link's
    fingerprint) and keep it. Adding it again changes nothing."""
    from chatrelay import relay_config

    st = load_state(state_path)
    entry, new = run_async(relay_config.add(st, relay_link))
    if new:
        save_state(state_path, st)
    echo(f"{'added' if new else 'already configured'}: {entry.name} {entry.link}")


@relays_config.command("list")
@state_option
def relays_config_list(state_path) -> None:
    """The configured relays, one a line: name, link, TLS fingerprint (and `via` for the
    one `join` goes through)."""
    st = load_state(state_path)
    for entry in st.relays:
        echo(f"{entry.name} {entry.link} {','.join(entry.pins) or '(no fingerprint: checked by host name)'}"
             + (" via" if entry.link == st.via else ""))


@relays_config.command("via")
@click.argument("relay", metavar="RELAY_LINK_OR_NAME")
@state_option
def relays_config_via(relay, state_path) -> None:
    """Join groups through this configured relay's forwarding from now on (`none`:
    directly): the groups' relays see its address, never yours."""
    from chatrelay.connection import forwarded

    st = load_state(state_path)
    if relay == "none":
        st.via = ""
        save_state(state_path, st)
        echo("joins go directly")
        return
    try:
        entry = st.find_relay(relay)
    except ChatRelayError as exc:
        fail(str(exc))

    async def check() -> None:
        async with forwarded(entry.link):
            pass  # a relay that does not forward is said so here
    run_async(check())
    st.via = entry.link
    save_state(state_path, st)
    echo(f"joins go through {entry.name}")


@relays_config.command("remove")
@click.argument("relay", metavar="RELAY_LINK_OR_NAME")
@state_option
def relays_config_remove(relay, state_path) -> None:
    """Forget a configured relay (the groups made with it keep it)."""
    from chatrelay import relay_config

    st = load_state(state_path)
    try:
        entry = relay_config.remove(st, relay)
    except ChatRelayError as exc:
        fail(str(exc))
    if st.via == entry.link:
        st.via = ""  # joins go directly again
    save_state(state_path, st)
    echo(f"removed: {entry.name}")


def relays_for(st, given) -> list[str]:
    from chatrelay import relay_config

    try:
        return relay_config.chosen(st, list(given))
    except ChatRelayError as exc:
        fail(str(exc))


def refuse_relay_link(link_text: str, state_path: str, what: str) -> None:
    """A relay link given where a group, channel or contact link is wanted: offered for the
    relay configuration (asked on a terminal), and refused as what was asked for."""
    from chatrelay import relay_config

    link = relay_config.relay_link_of(link_text)
    if link is None:
        return
    if sys.stdin.isatty() and click.confirm("This is a relay link. Add it to the relays you use?", err=True):
        st = load_state(state_path)
        entry, _ = run_async(relay_config.add(st, link_text))
        save_state(state_path, st)
        echo(f"added: {entry.name} {entry.link}")
        sys.exit(0)
    fail(str(ChatRelayError(Reason.LINK_KIND_MISMATCH, f"this is a relay link, not {what}: add it to the relays "
                                                        f"you use with `chatrelay relays config add {link}`")))
