"""Reading ahead and writing behind the models (foresight.background): order, overlap, errors, stops."""

import threading
import time

import pytest

from foresight.background import BackgroundWriter, read_ahead


def test_read_ahead_gives_every_item_in_order_and_makes_the_next_while_one_is_used():
    second_made = threading.Event()

    def items():
        yield 1
        second_made.set()
        yield 2
        yield 3

    seen = []
    for item in read_ahead(items()):
        if item == 1:  # read in turn, item 2 would not be made before this one is done with
            assert second_made.wait(timeout=5), "the next item was not made while this one was used"
        seen.append(item)
    assert seen == [1, 2, 3]


def test_read_ahead_raises_the_producers_error_where_its_item_was_expected():
    def items():
        yield "a"
        yield "b"
        raise ValueError("bad shard")

    seen = []
    with pytest.raises(ValueError, match="bad shard"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == ["a", "b"]


def test_leaving_read_ahead_early_stops_its_thread():
    made = []

    def endless():
        n = 0
        while True:
            made.append(n)
            yield n
            n += 1

    before = threading.active_count()
    for item in read_ahead(endless(), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before  # the producer has finished, not blocked on a full queue
    assert len(made) <= 4 + 2 + 1  # it stopped within depth (+ the one in hand) of the consumer


def test_background_writer_runs_every_job_and_holds_at_most_one_batch_behind():
    done, started = [], threading.Event()
    release = threading.Event()

    def slow(name):
        started.set()
        release.wait(timeout=5)
        done.append(name)

    writer = BackgroundWriter(pending=1)
    writer.submit([lambda: slow("a1"), lambda: slow("a2")])
    assert started.wait(timeout=5)
    waiter = threading.Thread(target=writer.submit, args=([lambda: done.append("b")],))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive(), "a second batch was accepted while the first was still being written"
    release.set()
    waiter.join(timeout=5)
    writer.close()
    assert done == ["a1", "a2", "b"]


def test_a_failed_write_is_raised_to_the_caller():
    def fails():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter() as writer:
            writer.submit([fails])


def test_an_error_in_the_loop_drops_the_writes_not_yet_started_and_is_the_one_raised():
    started, release, done = threading.Event(), threading.Event(), []

    def slow():
        started.set()
        release.wait(timeout=5)
        done.append("running")

    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(pending=2) as writer:
            writer.submit([slow, lambda: done.append("queued")])
            assert started.wait(timeout=5)
            threading.Timer(0.2, release.set).start()
            raise KeyboardInterrupt  # Ctrl-C while a batch is being written
    assert done == ["running"]  # the job that had started finished; the queued one never ran
