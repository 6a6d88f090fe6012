"""The `chatrelay` command line. Errors print one line to stderr and exit 2."""

from __future__ import annotations

import json
import sys

import click

from chatrelay.errors import ChatRelayError
from chatrelay.links import ShortLink

EXIT_ERROR = 2


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
def up(data_dir, listen, etcd, shards) -> None:
    """Start a relay on this machine and print its relay link."""
    from chatrelay import settings as settings_mod
    from chatrelay.cluster import identity
    from chatrelay.links import relay_link

    try:
        settings = settings_mod.load(
            {"data_dir": data_dir, "listen": listen, "etcd": etcd, "shards": shards}
        )
        key = identity.load_or_create(settings.data_dir)
        bundle = relay_link(key, settings.relay_name, [settings.listen])
    except ChatRelayError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot use data dir: {exc}")
    click.echo(str(bundle.link))
    # The gateway, shards, registry and message log land with the cluster (issue 3);
    # until then say so rather than pretend to serve.
    click.echo(
        f"chatrelay up: relay identity ready ({settings}); the relay cluster that serves "
        "this link is not built yet, so nothing is served",
        err=True,
    )


if __name__ == "__main__":
    main()
