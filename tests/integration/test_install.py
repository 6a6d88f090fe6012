"""The installed distribution, seen from outside the repository as a user sees it."""

import json
import subprocess
import sys

KEY = "A" * 43


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_chatrelay_command_parses_a_link(tmp_path):
    result = run(["chatrelay", "link", "parse", f"https://relay.example.com/g#{KEY}"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"kind": "g", "hosts": ["relay.example.com"], "link_key": KEY, "pins": [None]}


def test_chatrelay_command_refuses_garbage_with_exit_2(tmp_path):
    result = run(["chatrelay", "link", "parse", "not a link"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == "chatrelay: link must start with https:// or chatrelay:// (bad_link)\n"


def test_actors_and_cluster_install_under_chatrelay_only(tmp_path):
    code = (
        "import importlib.util as u, json;"
        "print(json.dumps([u.find_spec(n) is not None for n in "
        "('actors', 'cluster', 'chatrelay.actors', 'chatrelay.cluster', 'chatrelay.v1.relay_pb2_grpc')]))"
    )
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, False, True, True, True]
