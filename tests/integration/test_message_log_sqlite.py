"""What only the embedded (SQLite) message log promises beyond the conformance suite:
durability of an ack against kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from chatrelay.cluster.message_log_sqlite import SqliteMessageLog


@pytest.fixture
async def log(tmp_path):
    log = SqliteMessageLog(tmp_path / "messages.db")
    yield log
    await log.close()


def test_an_acked_append_survives_kill_9(tmp_path):
    """The process prints the ack, then is killed at once: the record must be there."""
    path = tmp_path / "m.db"
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
        async def main():
            log = SqliteMessageLog({str(path)!r})
            for i in range(1, 51):
                result = await log.append("s", [b"record-%d" % i])
                print("ack", result.seqs[0], flush=True)
            time.sleep(60)
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acked = 0
    try:
        for line in proc.stdout:
            acked = int(line.split()[1])
            if acked == 37:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert acked == 37

    async def check():
        log = SqliteMessageLog(path)
        try:
            records = await log.read("s", limit=100)
        finally:
            await log.close()
        return records

    records = asyncio.run(check())
    assert [r.seq for r in records][:37] == list(range(1, 38))
    assert records[36].data == b"record-37"
