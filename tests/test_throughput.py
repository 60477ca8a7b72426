"""Clips a second over a loop of batches, over all of it and after its first batch."""

from foresight import throughput


def test_the_steady_rate_leaves_out_the_first_batch(monkeypatch):
    clock = iter([0.0, 10.0, 14.0])  # start; the first batch's end; the report
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(clock))
    rate = throughput.Throughput()
    for clips in (4, 4, 4):  # the first batch took 10 s (compilation), the others 2 s each
        rate.add(clips)
    report = rate.report()
    assert report == {"seconds": 14.0, "clips_per_second": 12 / 14, "steady_clips_per_second": 8 / 4}


def test_one_batch_has_no_steady_rate(monkeypatch):
    clock = iter([0.0, 3.0, 3.0])
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(clock))
    rate = throughput.Throughput()
    rate.add(4)
    assert rate.report() == {"seconds": 3.0, "clips_per_second": 4 / 3, "steady_clips_per_second": None}
