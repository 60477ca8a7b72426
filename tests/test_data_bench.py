"""The data benchmark's quick mode runs the same code as the full measurement."""

import json

from foresight.bench.data import main


def test_data_bench_quick_reports_decode_and_cache_rates(tmp_path):
    report = main(["--quick", "--windows", "2", "--workers", "1", "--out", str(tmp_path / "b.json")])
    assert json.loads((tmp_path / "b.json").read_text()) == report
    assert report["decode"]["120p_area"]["windows_per_core_s"] > 0
    assert report["decode"]["120p_fast_bilinear"]["windows_per_core_s"] > 0
    assert report["cache"]["batch4"]["samples_per_s"] > 0 and report["cache"]["batch1"]["batch_size"] == 1
