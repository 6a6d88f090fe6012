"""Regenerate the checked-in protobuf and gRPC code from proto/chatrelay/v1/*.proto.

Run `python scripts/gen_proto.py` after changing a .proto file. With `--check DIR` it
writes into DIR instead, so a test can compare the result with what is checked in.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def sources() -> list[pathlib.Path]:
    return sorted((PROTO_ROOT / "chatrelay" / "v1").glob("*.proto"))


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Run protoc on every source; returns the files written, relative to out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = [str(p.relative_to(PROTO_ROOT)) for p in sources()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *rel,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for r in rel:
        stem = r[: -len(".proto")]
        written.extend(pathlib.Path(stem + suffix) for suffix in GENERATED)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", type=pathlib.Path, help="write into this folder instead")
    args = parser.parse_args(argv)
    out = args.check or ROOT
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
