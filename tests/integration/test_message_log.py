"""The embedded message log on real files."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from chatrelay.actors.message_log import MessageLog
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog


@pytest.fixture
async def log(tmp_path):
    log = SqliteMessageLog(tmp_path / "messages.db")
    assert isinstance(log, MessageLog)
    yield log
    await log.close()


async def test_sequence_numbers_are_per_stream_and_gapless(log):
    assert (await log.append("a", [b"1", b"2"])).seqs == (1, 2)
    assert (await log.append("b", [b"x"])).seqs == (1,)
    assert (await log.append("a", [b"3"])).seqs == (3,)
    assert [r.data for r in await log.read("a")] == [b"1", b"2", b"3"]
    assert [r.seq for r in await log.read("a", after_seq=1, limit=1)] == [2]
    assert await log.last_seq("a") == 3 and await log.last_seq("none") == 0


async def test_concurrent_appends_share_commits(log):
    streams = [f"g{i}" for i in range(50)]
    results = await asyncio.gather(*(log.append(s, [s.encode()] * 3) for s in streams for _ in range(4)))
    assert all(len(r.seqs) == 3 for r in results)
    for s in streams:
        assert [r.seq for r in await log.read(s)] == list(range(1, 13))
    assert log.commits < len(results)  # 200 appends, fewer commits: grouped


async def test_history_pages_back_oldest_first(log):
    await log.append("h", [str(i).encode() for i in range(1, 11)])
    assert [r.seq for r in await log.read_before("h", limit=3)] == [8, 9, 10]
    assert [r.seq for r in await log.read_before("h", before_seq=8, limit=3)] == [5, 6, 7]
    assert [r.seq for r in await log.read_before("h", before_seq=2, limit=3)] == [1]


async def test_keys_make_appends_idempotent(log):
    first = await log.append("k", [b"post"], keys=[b"id-1"])
    again = await log.append("k", [b"post", b"other"], keys=[b"id-1", b"id-2"])
    assert first.seqs == (1,) and first.duplicates == (False,)
    assert again.seqs == (1, 2) and again.duplicates == (True, False)
    assert [r.data for r in await log.read("k")] == [b"post", b"other"]


async def test_trim_never_reuses_sequence_numbers(log):
    await log.append("t", [b"1", b"2", b"3"])
    assert await log.trim("t", 2) == 2
    assert [r.seq for r in await log.read("t")] == [3]
    assert (await log.append("t", [b"4"])).seqs == (4,)


async def test_reopen_keeps_everything(tmp_path):
    log = SqliteMessageLog(tmp_path / "m.db")
    await log.append("s", [b"a", b"b"])
    await log.close()
    log = SqliteMessageLog(tmp_path / "m.db")
    try:
        assert [r.data for r in await log.read("s")] == [b"a", b"b"]
        assert (await log.append("s", [b"c"])).seqs == (3,)
    finally:
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
