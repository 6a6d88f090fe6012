"""What a relay process reports about itself: its pid and resident memory."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_info(node_id: str = "") -> dict:
    """{"pid", "rss_bytes", "node_id"}; rss_bytes is 0 where /proc is not there to read;
    `node_id` is the Ray node's, as the caller knows it ("" outside Ray)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            rss_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        rss_pages = 0
    return {"pid": os.getpid(), "rss_bytes": rss_pages * _PAGE, "node_id": node_id}
