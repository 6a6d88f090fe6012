"""What every `chatrelay` command shares: the command group, the one-line errors (exit
2), what it prints (`echo`: never a control sequence that came from elsewhere), running
the SDK's coroutines, and the state file."""

from __future__ import annotations

import sys
import unicodedata

import click

from chatrelay.errors import ChatRelayError

EXIT_ERROR = 2
KEPT = frozenset("\n\t")
BIDI = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))  # embeddings, overrides, isolates


def shown(text: str) -> str:
    """Text as it may reach a terminal. Much of what the CLI prints came from elsewhere (a
    post, a name, a relay's message): control characters (escape sequences, carriage
    returns, bells) and bidi overrides are written as escapes, never acted on; new lines
    and tabs stay."""
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if c not in KEPT and (unicodedata.category(c) == "Cc" or c in BIDI) else c
        for c in text)


def echo(message: str = "", err: bool = False) -> None:
    """click.echo, through `shown`: every line the CLI prints goes through here."""
    click.echo(shown(str(message)), err=err)


def fail(message: str) -> None:
    echo(f"chatrelay: {message}", err=True)
    sys.exit(EXIT_ERROR)


class OneLine(click.Group):
    """Bad input on the command line (an unknown option, a value not among the choices)
    is one line on stderr and exit 2, as every other refusal is; not click's usage text."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "chatrelay"
            fail(f"{exc.format_message()} (see {command} --help)")
        except click.ClickException as exc:
            fail(exc.format_message())
        except click.Abort:
            echo("chatrelay: aborted", err=True)
            sys.exit(1)


@click.group(cls=OneLine)
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


def run_async(coro, via: str | None = None):
    """Run `coro`; with `via` (a relay link), every relay it reaches is reached through
    that relay's forwarding (chatrelay/forwarding.py)."""
    import asyncio

    async def forwarded():
        from chatrelay.connection import forwarded as through

        try:
            async with through(via):
                return await coro
        finally:
            coro.close()  # not started where the forwarding was refused
    try:
        return asyncio.run(forwarded() if via else coro)
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


def owned_command(which, state_path, action, save=True, find="find_owned"):
    """`action(group)` for the group of the state file named by `which` (one it owns;
    with `find`, the State method that picks it: `find_membership` for one it owns or
    joined, `find_joined` for one it joined), the state file saved after."""
    st = load_state(state_path)
    try:
        owned = getattr(st, find)(which)
    except ChatRelayError as exc:
        fail(str(exc))
    result = run_async(action(owned), via=getattr(owned, "via", ""))  # a membership joined --via keeps to it
    if save:
        save_state(state_path, st)
    return owned, result


group_option = click.option("--group", "which", default=None, help="Name or link, when the state file owns several.")


def report_skipped(checked) -> None:
    """One line on stderr for each item a reader skipped (chatrelay.items): the command
    goes on, and exits 0 for what it did read."""
    for skipped in getattr(checked, "skipped", ()):
        echo(f"chatrelay: {skipped}", err=True)
