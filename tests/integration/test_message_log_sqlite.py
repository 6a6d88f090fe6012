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


async def test_a_full_disk_writes_nothing_and_says_so():
    """The embedded store on a 1 MiB tmpfs, filled by appends: the one that meets the full
    disk is refused whole, saying why (UNAVAILABLE to a client), as is a member write
    then; every append acked before it reads back."""
    from chatrelay.actors.calls import StoreUnavailable
    from chatrelay.actors.message_log import Fence
    from chatrelay.actors.records import MemberRecord, MemberStatus
    from chatrelay.cluster.member_store_sqlite import SqliteMemberStore

    from realparts import SmallDisk, fill_until_full

    with SmallDisk("1m") as small:
        log, members = SqliteMessageLog(f"{small}/messages.db"), SqliteMemberStore(f"{small}/messages.db")
        try:
            fence = Fence("g", await log.claim("g"))
            await fill_until_full(log, 1000)  # about 1 MiB at most
            member = MemberRecord(box_key=bytes(32), display_name="m", status=MemberStatus.MEMBER, joined_ms=1,
                                  join=os.urandom(200_000))
            with pytest.raises(StoreUnavailable) as caught:
                await members.put("g", b"k", member, fence)
            assert str(caught.value) == "the store's disk is full; nothing of the request was written"
            assert await members.statuses("g") == {}
        finally:
            await members.close()
            await log.close()


async def test_another_process_closing_the_store_never_takes_the_wal_from_under_a_relay(tmp_path):
    """A relay process holds the message log and the member store open on one file;
    another process (a second shard, an operator's look) opens the file and closes it.
    Before, opening the second store closed a descriptor of the file, which let go of
    every SQLite lock of the process: the other process's close then deleted the WAL
    under the relay, whose later commits went to a deleted file, seen by no one and lost
    at its restart."""
    from chatrelay.cluster.member_store_sqlite import SqliteMemberStore

    path = tmp_path / "messages.db"
    log = SqliteMessageLog(path)
    store = SqliteMemberStore(path)  # the same process opens the file again
    try:
        await log.append("s", [b"before"])
        look = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1').fetchall(); c.close()"
        subprocess.run([sys.executable, "-c", look, str(path)], check=True, timeout=60)
        await log.append("s", [b"after"])
        count = ("import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                 "'SELECT count(*) FROM records WHERE stream = ?', ('s',)).fetchone()[0])")
        seen = subprocess.run([sys.executable, "-c", count, str(path)], capture_output=True, text=True, check=True,
                              timeout=60)
        assert seen.stdout.strip() == "2"
        assert os.path.exists(f"{path}-wal")
    finally:
        await store.close()
        await log.close()
