"""Generated protobuf and gRPC code for chatrelay.v1; regenerate with scripts/gen_proto.py."""
