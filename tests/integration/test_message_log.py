"""MessageLog conformance: the same tests against every backend (the `message_logs`
fixture in conftest.py opens each); a new backend passes these before it is used."""

from __future__ import annotations

import asyncio

import pytest


async def test_sequence_numbers_are_per_stream_and_gapless(log):
    assert (await log.append("a", [b"1", b"2"])).seqs == (1, 2)
    assert (await log.append("b", [b"x"])).seqs == (1,)
    assert (await log.append("a", [b"3"])).seqs == (3,)
    assert [r.data for r in await log.read("a")] == [b"1", b"2", b"3"]
    assert [r.seq for r in await log.read("a", after_seq=1, limit=1)] == [2]
    assert await log.last_seq("a") == 3 and await log.last_seq("none") == 0


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


async def test_reopen_keeps_everything(message_logs):
    log = message_logs()
    await log.append("s", [b"a", b"b"])
    await log.close()
    log = message_logs()
    assert [r.data for r in await log.read("s")] == [b"a", b"b"]
    assert (await log.append("s", [b"c"])).seqs == (3,)


async def test_find_says_where_keys_are_and_remembers_trimmed_ones(log):
    await log.append("f", [b"a", b"b", b"c"], keys=[b"id-a", None, b"id-c"])
    await log.append("other", [b"x"], keys=[b"id-a"])
    assert await log.find("f", [b"id-a", b"id-c", b"id-z"]) == {b"id-a": 1, b"id-c": 3}
    assert await log.find("f", []) == {}
    await log.trim("f", 1)
    assert await log.find("f", [b"id-a", b"id-c"]) == {b"id-a": 1, b"id-c": 3}


async def test_a_trimmed_record_sent_again_is_a_duplicate_not_a_new_record(log):
    """A post replayed after retention trimmed it must not come back."""
    await log.append("t", [b"post", b"later"], keys=[b"id-post", b"id-later"])
    assert await log.trim("t", 1) == 1
    again = await log.append("t", [b"post"], keys=[b"id-post"])
    assert (again.seqs, again.duplicates) == ((1,), (True,))
    assert [r.seq for r in await log.read("t")] == [2] and await log.last_seq("t") == 2


async def test_usage_counts_the_records_and_bytes_after_a_seq(log):
    assert await log.usage("u") == (0, 0)
    await log.append("u", [b"a" * 10, b"b" * 20, b"c" * 30])
    assert await log.usage("u") == (3, 60)
    assert await log.usage("u", after_seq=1) == (2, 50)
    assert await log.usage("u", after_seq=3) == (0, 0)
    assert await log.usage("other") == (0, 0)


async def test_concurrent_appends_of_many_streams_share_commits(log):
    """Group commit: every backend commits the appends that wait together, so that a
    relay's many groups cost it fewer transactions than appends."""
    streams = [f"g{i}" for i in range(50)]
    results = await asyncio.gather(*(log.append(s, [s.encode()] * 3) for s in streams for _ in range(4)))
    assert all(len(r.seqs) == 3 for r in results)
    for s in streams:
        assert [r.seq for r in await log.read(s)] == list(range(1, 13))
    assert log.commits < len(results)  # 200 appends, fewer commits: grouped


async def test_claims_raise_a_groups_epoch(log):
    assert [await log.claim("g") for _ in range(3)] == [1, 2, 3]
    assert await log.claim("other") == 1


async def test_an_append_with_an_old_fence_is_refused_and_stores_nothing(log):
    from chatrelay.actors.message_log import Fence, Fenced

    old = Fence("g", await log.claim("g"))
    assert (await log.append("posts/g", [b"1"], fence=old)).seqs == (1,)
    new = Fence("g", await log.claim("g"))
    with pytest.raises(Fenced) as caught:
        await log.append("posts/g", [b"late"], keys=[b"id-late"], fence=old)
    assert (caught.value.fence, caught.value.current) == (old, new.epoch)
    assert str(caught.value) == f"group g was claimed again (epoch {new.epoch}, this shard holds {old.epoch})"
    assert (await log.append("posts/g", [b"2"], fence=new)).seqs == (2,)
    assert [r.data for r in await log.read("posts/g")] == [b"1", b"2"]
    assert await log.find("posts/g", [b"id-late"]) == {}


async def test_a_fenced_append_among_others_fails_alone(log):
    """Group commit: appends of several groups in one transaction; the one with an old
    fence is refused, the others are stored."""
    from chatrelay.actors.message_log import Fence, Fenced

    stale = Fence("a", await log.claim("a"))
    await log.claim("a")
    fresh = Fence("b", await log.claim("b"))
    results = await asyncio.gather(
        log.append("posts/a", [b"x"], fence=stale), log.append("posts/b", [b"y"], fence=fresh),
        log.append("queue/q", [b"z"]), return_exceptions=True)
    assert isinstance(results[0], Fenced)
    assert [r.seqs for r in results[1:]] == [(1,), (1,)]
    assert await log.last_seq("posts/a") == 0


async def test_an_erased_record_is_read_no_more_and_sent_again_is_a_duplicate(log):
    """A deleted post: its record goes (from reads and history), the seqs around it stay,
    and the same record sent again is answered as held, not stored again."""
    await log.append("e", [b"a", b"b", b"c"], keys=[b"ka", b"kb", b"kc"])
    assert await log.erase("e", [b"kb", b"unknown"]) == 1
    assert await log.erase("e", []) == 0
    assert [(r.seq, r.data) for r in await log.read("e")] == [(1, b"a"), (3, b"c")]
    assert [r.seq for r in await log.read_before("e", 0, 10)] == [1, 3]
    again = await log.append("e", [b"b"], keys=[b"kb"])
    assert (again.seqs, again.duplicates) == ((2,), (True,))
    assert [r.data for r in await log.read("e")] == [b"a", b"c"]
    assert await log.erase("e", [b"kb"]) == 0  # once gone, gone
