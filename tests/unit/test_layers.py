"""The import graph points one way: the pure core <- the relay logic in actors/ <- cluster/
(DESIGN.md section 1), with the SDK beside actors/ and the CLI on top; and it has no
cycle. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = {"chatrelay": REPO / "chatrelay", "chatrelay.actors": REPO / "actors", "chatrelay.cluster": REPO / "cluster"}

CORE = {"admission", "codec", "envelope", "errors", "group", "links", "invites", "members", "moderation", "items", "retry",
        "short_links", "tls", "v1"}
SHARED = {"status", "settings"}  # gRPC status mapping and settings: used by the SDK and the relay
SDK = {"client", "connection", "owner", "reader", "contacts", "direct", "checker", "moderators", "relay_config", "state", "invite_codes", "joining", "co_owners", "forwarding",
       "admin_client"}
RANK = {"core": 0, "shared": 1, "sdk": 2, "actors": 2, "cluster": 3, "cli": 4}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "chatrelay":
        return "core"
    if parts[1] in ("actors", "cluster"):
        return parts[1]
    if parts[1] == "cli":
        return "cli"
    for name, members in (("core", CORE), ("shared", SHARED), ("sdk", SDK)):
        if parts[1] in members:
            return name
    raise AssertionError(f"{module} is in no layer: add it to one in tests/unit/test_layers.py")


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "v1" in path.relative_to(folder).parts and package == "chatrelay":
                continue  # generated code
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(path: pathlib.Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(chatrelay modules, other top-level packages) that `path` imports."""
    ours, others = set(), set()

    def add(name: str) -> None:
        if name == "chatrelay.v1" or name.startswith("chatrelay.v1."):
            return  # generated code: imports nothing of ours
        if name.startswith("chatrelay"):
            while name not in known and "." in name:  # a name from a module, or a package
                name = name.rsplit(".", 1)[0]
            ours.add(name)
        else:
            others.add(name.split(".")[0])

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                add(f"{node.module}.{alias.name}")
    return ours, others


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    found = modules()
    edges, third = {}, {}
    for name, path in found.items():
        ours, others = imports(path, set(found))
        edges[name] = ours - {name}
        third[name] = others
    return edges, third


def test_every_import_points_down_or_stays_in_its_layer():
    edges, _ = graph()
    wrong = []
    for module, targets in edges.items():
        for target in targets:
            a, b = layer(module), layer(target)
            if a != b and RANK[b] >= RANK[a]:
                wrong.append(f"{module} ({a}) imports {target} ({b})")
    assert wrong == []


def test_actors_import_nothing_from_cluster():
    edges, _ = graph()
    assert [(m, t) for m, ts in edges.items() if m.startswith("chatrelay.actors") for t in ts
            if t.startswith("chatrelay.cluster")] == []


def test_no_import_cycle():
    edges, _ = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_core_and_actors_serve_no_grpc_and_ray_is_made_in_one_place():
    _, third = graph()
    core_grpc = [m for m, o in third.items() if layer(m) == "core" and o & {"grpc", "ray"}]
    actors_grpc = [m for m, o in third.items() if layer(m) == "actors" and "grpc" in o]
    ray_users = sorted(m for m, o in third.items() if layer(m) == "actors" and "ray" in o)
    assert core_grpc == [] and actors_grpc == []
    assert ray_users == ["chatrelay.actors.factory"]


def test_the_checker_sees_a_wrong_import():
    """The rules catch what they are meant to (a check that cannot fail is no check)."""
    assert layer("chatrelay.actors.shard") == "actors" and layer("chatrelay.cluster.up") == "cluster"
    assert RANK[layer("chatrelay.cluster.up")] >= RANK[layer("chatrelay.actors.shard")]
    ours, _ = imports(REPO / "cluster" / "up.py", set(modules()))
    assert "chatrelay.actors.factory" in ours
