"""Which threads do jobwatch's own I/O: the marks nest and overlap, and a thread
is its own until it has left every mark it entered."""

from __future__ import annotations

import threading

from jobwatch.client.own_io import doing_io, is_own_thread, own_output, sender_thread


def test_marks_nest_and_a_thread_is_own_until_it_leaves_them_all() -> None:
    me = threading.get_ident()
    assert not is_own_thread(me)
    with sender_thread():
        with doing_io():
            with doing_io(), own_output():
                assert is_own_thread(me)
            assert is_own_thread(me)
        assert is_own_thread(me)  # still the sender after its request
    assert not is_own_thread(me)


def test_a_mark_is_the_marked_threads_only() -> None:
    seen: list[bool] = []
    with own_output():
        other = threading.Thread(target=lambda: seen.append(is_own_thread(threading.get_ident())))
        other.start()
        other.join()
    assert seen == [False]


def test_a_mark_left_by_an_exception_is_gone() -> None:
    me = threading.get_ident()
    try:
        with doing_io():
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    assert not is_own_thread(me)
