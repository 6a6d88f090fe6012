"""What every `chatrelay` command shares: the command group, the one-line errors (exit
2), running the SDK's coroutines, and the state file."""

from __future__ import annotations

import sys

import click

from chatrelay.errors import ChatRelayError

EXIT_ERROR = 2


def fail(message: str) -> None:
    click.echo(f"chatrelay: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group()
@click.version_option(package_name="chatrelay")
@click.option(
    "--insecure", is_flag=True, default=None,
    help="Talk plaintext gRPC to relays that run with --insecure too; never for a public relay [CHATRELAY_INSECURE].",
)
def main(insecure: bool | None) -> None:
    """chatrelay: relays for large public channels and groups."""
    if insecure:
        from chatrelay import connection

        connection.set_insecure(True)


def run_async(coro):
    import asyncio

    try:
        return asyncio.run(coro)
    except ChatRelayError as exc:
        fail(str(exc))


def state_option(fn):
    return click.option(
        "--state", "state_path", required=True, type=click.Path(dir_okay=False),
        help="This identity's state file; created if absent.",
    )(fn)


def load_state(path):
    import pathlib

    from chatrelay import state as state_mod

    try:
        return state_mod.load(pathlib.Path(path))
    except ChatRelayError as exc:
        fail(str(exc))


def save_state(path, st) -> None:
    import pathlib

    from chatrelay import state as state_mod

    try:
        state_mod.save(pathlib.Path(path), st)
    except OSError as exc:
        fail(f"cannot write state file {path}: {exc}")


def owned_command(which, state_path, action, save=True):
    st = load_state(state_path)
    try:
        owned = st.find_owned(which)
    except ChatRelayError as exc:
        fail(str(exc))
    result = run_async(action(owned))
    if save:
        save_state(state_path, st)
    return owned, result


group_option = click.option("--group", "which", default=None, help="Name or link, when the state file owns several.")


def report_skipped(checked) -> None:
    """One line on stderr for each item a reader skipped (chatrelay.items): the command
    goes on, and exits 0 for what it did read."""
    for skipped in getattr(checked, "skipped", ()):
        click.echo(f"chatrelay: {skipped}", err=True)
