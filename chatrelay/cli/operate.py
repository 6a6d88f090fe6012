"""Commands for running and operating a relay: `up`, `status`, `top`, `move`, and `link parse`."""

from __future__ import annotations

import json
import sys

import click

from chatrelay import settings as settings_mod
from chatrelay.cli.base import echo, fail, main, run_async
from chatrelay.errors import ChatRelayError
from chatrelay.links import ShortLink


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
    echo(json.dumps(parsed.to_json()))


def settings_options(fn):
    """One option per field of Settings, named, typed and explained by it."""
    for f in reversed(settings_mod.fields()):
        kind = settings_mod.kind(f)
        if kind is bool:  # a switch: given, or left to the variable and the default
            fn = click.option(
                settings_mod.flag(f), f.name, is_flag=True, default=None,
                help=f"{f.metadata['help']} [{settings_mod.env_name(f)}].",
            )(fn)
            continue
        fn = click.option(
            settings_mod.flag(f), f.name, default=None, type=kind if kind in (int, float) else None,
            help=f"{f.metadata['help']} [{settings_mod.env_name(f)}].",
        )(fn)
    return fn


@main.command()
@settings_options
def up(**flags) -> None:
    """Run a relay on this machine until interrupted; prints its relay link, then `ready`."""
    import signal
    import threading

    from chatrelay.cluster import up as up_mod

    try:
        settings = settings_mod.load(flags)
        relay = up_mod.start(settings)
    except ChatRelayError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc}")
    echo(relay.link)
    echo(f"relay serving on {', '.join(relay.addresses) or relay.target} ({settings})", err=True)
    if settings.metrics:
        echo(f"metrics on http://{settings.metrics}/metrics", err=True)
    echo("ready")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if relay.lost:  # nothing is served any more: exit, for a supervisor to start it again
            fail(f"stopped: {relay.lost}")
    echo("stopping", err=True)
    up_mod.stop(relay)


@main.command()
@click.option("--data-dir", default=None, help="Where to keep them [CHATRELAY_DATA_DIR].")
def keys(data_dir) -> None:
    """Make the relay's keys (identity, operator, TLS), or show the ones there; for a
    Kubernetes Secret (helm/chatrelay) or before a first `chatrelay up`."""
    from chatrelay import tls
    from chatrelay.cluster import identity

    folder = settings_mod.one("data_dir", data_dir)
    try:
        identity.secure_data_dir(folder)
        relay = identity.load_or_create(folder)
        identity.load_or_create(folder, identity.OPERATOR_KEY_FILE)
        _, cert = identity.load_or_create_tls(folder)
    except ChatRelayError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the keys in {folder}: {exc.strerror}")
    names = (identity.KEY_FILE, identity.OPERATOR_KEY_FILE, identity.TLS_KEY_FILE, identity.TLS_CERT_FILE)
    echo(f"keys in {folder}: {', '.join(names)}")
    echo(f"relay key {relay.verify_key.encode().hex()}")
    echo(f"tls pin {tls.render_pin(tls.pin_of_pem(cert))}")


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
    import pathlib

    from chatrelay import admin_client
    from chatrelay.client import target_of_link
    from chatrelay.cluster import identity

    try:
        folder = settings_mod.one("data_dir", data_dir)
        if key_path is None and not (folder / identity.OPERATOR_KEY_FILE).exists():
            # Looked for where `up` keeps it by default: most likely run from another folder.
            fail(f"no relay data dir at {folder} (no {identity.OPERATOR_KEY_FILE} there): pass --data-dir, the one "
                 "`chatrelay up` used (or set CHATRELAY_DATA_DIR), or --operator-key FILE and --relay LINK (malformed)")
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


def _admin_call(data_dir, relay_link, key_path, ask):
    """`ask(client)` of the relay's AdminService, from the flags or the data dir."""
    async def run():
        async with _admin_client(data_dir, relay_link, key_path) as c:
            return await ask(c)
    return run_async(run())


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
    out = run_async(run())
    if as_json:
        echo(json.dumps(out, indent=2))
        return
    echo(f"health {out['health']}: {out['nodes']} Ray node(s), registry {out['registry']}, store {out['store']}")
    echo(f"groups {out['groups']} registered, {out['groups_loaded']} loaded; "
               f"subscribers {out['subscribers']}")
    echo(f"posts {out['posts_per_second']:.1f}/s, deliveries {out['deliveries_per_second']:.1f}/s "
               f"(over {out['window_seconds']:.1f} s)")
    for s in out["shards"]:
        if not s["healthy"]:
            echo(f"shard {s['shard_id']}: NOT ANSWERING ({s['error']})")
            continue
        echo(f"shard {s['shard_id']}: {s['groups']} groups, {s['posts_per_second']:.1f} posts/s, "
                   f"mailboxes {s['mailbox_depth']}, {s['rss_bytes'] / 2**20:.0f} MiB, node {s['node_id'][:8]}")
    for i, g in enumerate(out["gateways"]):
        if not g["healthy"]:
            echo(f"gateway {i}: NOT ANSWERING ({g['error']})")
            continue
        echo(f"gateway {i}: {g['subscribers']} subscribers, {g['deliveries_per_second']:.1f} deliveries/s, "
                   f"{g['cut_off']} cut off, node {g['node_id'][:8]}, pid {g['pid']}")
    for taken in out.get("taken_down", []):
        echo(f"taken down: {taken['group_address']} ({taken['reason']})")


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
        echo(json.dumps(run_async(run()), indent=2))
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
        run_async(live())
    except KeyboardInterrupt:
        pass


@main.command()
@_admin_options
@click.argument("address")
@click.option("--shard", "to_shard", required=True, type=click.IntRange(0), help="The shard index it moves to.")
def move(data_dir, relay_link, key_path, as_json, address, to_shard) -> None:
    """Move a group to another relay shard (no post is lost or reordered)."""
    out = _admin_call(data_dir, relay_link, key_path, lambda c: c.move(address, to_shard))
    echo(json.dumps(out) if as_json else f"group {address} is served by shard {out['shard_id']}")


@main.group()
def admin() -> None:
    """The operator's actions on one group of this relay."""


@admin.command("takedown")
@_admin_options
@click.argument("address")
@click.option("--reason", required=True, help="Why, in the operator's words (1 to 500 characters): "
              "whoever is refused is shown it, and the owners find it in their service log.")
def takedown(data_dir, relay_link, key_path, as_json, address, reason) -> None:
    """Take a group down on this relay: its joins, posts and reads are refused (taken_down)."""
    out = _admin_call(data_dir, relay_link, key_path, lambda c: c.take_down(address, reason))
    echo(json.dumps(out) if as_json else f"group {address} is taken down: {out['taken_down']}")


@admin.command("restore")
@_admin_options
@click.argument("address")
def restore(data_dir, relay_link, key_path, as_json, address) -> None:
    """Lift a takedown: the group is served again on this relay."""
    out = _admin_call(data_dir, relay_link, key_path, lambda c: c.restore(address))
    echo(json.dumps(out) if as_json else f"group {address} is served again")


if __name__ == "__main__":
    main()
