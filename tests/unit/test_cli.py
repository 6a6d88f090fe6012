import json

import pytest
from click.testing import CliRunner

from chatrelay.cli import main

KEY = "A" * 43
PIN, PIN2 = "B" * 42 + "A", "C" * 42 + "A"  # 32 bytes each, canonical base64url


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"https://relay.example.com/c#{KEY}", {"kind": "c", "hosts": ["relay.example.com"], "link_key": KEY, "pins": [None]}),
        (
            f"chatrelay://a.example:1/r#{KEY}?h=b.example,[::1]:7",
            {"kind": "r", "hosts": ["a.example:1", "b.example", "[::1]:7"], "link_key": KEY, "pins": [None] * 3},
        ),
        (
            f"https://a.example/g#{KEY}?f={PIN}&h={PIN2}@b.example,c.example",
            {"kind": "g", "hosts": ["a.example", "b.example", "c.example"], "link_key": KEY, "pins": [PIN, PIN2, None]},
        ),
    ],
)
def test_link_parse_prints_json(text, expected):
    result = run("link", "parse", text)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected
    assert result.stderr == ""


@pytest.mark.parametrize(
    "text, line",
    [
        ("garbage", "chatrelay: link must start with https:// or chatrelay:// (bad_link)"),
        ("", "chatrelay: link is empty (bad_link)"),
        ("x" * 10_000, "chatrelay: link is 10000 characters; at most 2048 allowed (too_large)"),
        (f"https://h/q#{KEY}", "chatrelay: unknown link kind 'q'; expected one of r, g, c, a, i (unknown_link_kind)"),
    ],
)
def test_link_parse_refuses_with_one_line_and_exit_2(text, line):
    result = run("link", "parse", text)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == line + "\n"


def test_link_parse_without_argument_is_a_usage_error():
    result = run("link", "parse")
    assert result.exit_code == 2
    assert "Missing argument 'LINK'" in result.stderr


def test_up_refuses_a_bad_listen_address(tmp_path):
    result = run("up", "--data-dir", str(tmp_path), "--listen", "nowhere")
    assert result.exit_code == 2
    assert result.stderr == "chatrelay: --listen must be HOST:PORT, got 'nowhere' (malformed)\n"


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)])
def test_durations(text, seconds):
    from chatrelay.cli import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "soon", "5w", "1.5h"])
def test_bad_durations_are_refused(text):
    from chatrelay.cli import parse_duration
    from chatrelay.errors import ChatRelayError, Reason

    with pytest.raises(ChatRelayError) as info:
        parse_duration(text)
    assert info.value.reason is Reason.MALFORMED
    assert info.value.message == f"--expires must look like 90s, 30m, 12h or 7d, got {text!r}"


def test_request_ids_are_hex_and_checked():
    from chatrelay.client import PendingJoin, parse_request_id
    from chatrelay.errors import ChatRelayError, Reason

    rid = bytes([0xFB]) + bytes(15)  # base64url of this starts with "-", hex never does
    shown = str(PendingJoin(request_id=rid, display_name="Bob", sign_key=bytes(32), relay="r"))
    assert shown == rid.hex() + " Bob" and not shown.startswith("-")
    assert parse_request_id(rid.hex()) == rid
    for bad in ("-SqTZjLoc2NGsY-avbt8qQ", "abc", rid.hex() + "00"):
        with pytest.raises(ChatRelayError) as info:
            parse_request_id(bad)
        assert info.value.reason is Reason.MALFORMED
        assert info.value.message == f"request id is malformed: {bad!r} is not 32 hex digits"


def test_keys_makes_the_relays_keys_once_and_shows_them_after(tmp_path):
    import os
    import stat

    folder = tmp_path / "keys"
    first = run("keys", "--data-dir", str(folder))
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0] == f"keys in {folder}: relay-identity.key, operator.key, tls.key, tls.crt"
    assert lines[1].startswith("relay key ") and len(lines[1]) == len("relay key ") + 64
    assert lines[2].startswith("tls pin ") and len(lines[2]) == len("tls pin ") + 43
    for name in ("relay-identity.key", "operator.key", "tls.key", "tls.crt"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert run("keys", "--data-dir", str(folder)).stdout == first.stdout  # kept, not made again


def test_keys_in_a_folder_that_cannot_be_made_fail_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("keys", "--data-dir", str(blocker / "keys"))
    assert result.exit_code == 2
    assert result.stderr == f"chatrelay: cannot write the keys in {blocker / 'keys'}: Not a directory\n"


def test_what_reaches_a_terminal_carries_no_control_sequence():
    from chatrelay.cli.base import shown

    assert shown("a\x1b[2Jb") == "a\\x1b[2Jb"  # an escape sequence, written out
    assert shown("bell\x07 back\r over\x08") == "bell\\x07 back\\r over\\x08"
    assert shown("left \u202eright\u2066") == "left \\u202eright\\u2066"  # bidi overrides and isolates
    assert shown("lines\nand\ttabs stay") == "lines\nand\ttabs stay"
    assert shown("é ü 中文 👨\u200d👩\u200d👧") == "é ü 中文 👨\u200d👩\u200d👧"  # letters and emoji as they are


def test_every_command_says_what_it_does():
    """`chatrelay --help` lists each command with a line of help (a docstring built with
    `+` is no docstring: the command showed none)."""
    import click

    def commands(group, path=()):
        for name, command in group.commands.items():
            yield (*path, name), command
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))
    silent = [" ".join(path) for path, command in commands(main) if not (command.help or "").strip()]
    assert silent == []


@pytest.mark.parametrize("command", ["status", "top"])
def test_admin_commands_away_from_the_data_dir_say_which_flag_is_missing(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no chatrelay-data here: `up` was run elsewhere
    monkeypatch.delenv("CHATRELAY_DATA_DIR", raising=False)
    for args, folder in (([], "chatrelay-data"), (["--data-dir", "elsewhere"], "elsewhere")):
        result = run(command, *args)
        assert (result.exit_code, result.output) == (2, (
            f"chatrelay: no relay data dir at {folder} (no operator.key there): pass --data-dir, the one "
            "`chatrelay up` used (or set CHATRELAY_DATA_DIR), or --operator-key FILE and --relay LINK (malformed)\n"))
