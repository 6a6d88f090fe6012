"""Pages sized in bytes (issue 16): whatever the items' sizes, an answer stays within
its budget, so a client's receive limit is never reached; it holds one item at least,
so a reader's cursor always moves on; and it is the longest run that fits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatrelay.actors.message_log import PAGE_BYTES, LogRecord, fit, record_size

sizes = st.lists(st.integers(min_value=0, max_value=200), max_size=60)


@given(sizes, st.integers(min_value=1, max_value=1000), st.booleans())
def test_a_page_is_the_longest_run_within_the_budget_and_never_empty(items, budget, newest):
    page = fit(items, lambda n: n, newest=newest, budget=budget)
    if not items:
        assert page == []
        return
    assert page == (items[len(items) - len(page):] if newest else items[:len(page)])
    assert len(page) >= 1
    assert sum(page) <= budget or len(page) == 1
    if len(page) < len(items):  # one more would not fit
        following = items[len(items) - len(page) - 1] if newest else items[len(page)]
        assert sum(page) + following > budget


def test_posts_of_16_kib_fill_a_page_well_below_a_clients_4_mib():
    records = [LogRecord(seq=i, data=bytes(16 * 1024 + 200), ts=0, key=bytes(32)) for i in range(1, 501)]
    page = fit(records, newest=True)
    assert sum(record_size(r) for r in page) <= PAGE_BYTES < 4 * 1024 * 1024
    assert [r.seq for r in page] == list(range(501 - len(page), 501)) and len(page) == 62
