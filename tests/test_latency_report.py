"""The latency benchmark's report helpers: percentiles, ratios, stop lengths, decode loops."""

from __future__ import annotations

import argparse
import os

import pytest
import torch

from benchmarks.latency import cuda_graphs, decode_loops, ratio, stop_lengths, timing


def test_timing_reports_percentiles_in_the_unit_asked() -> None:
    seconds = [0.010, 0.020, 0.030, 0.040, 0.100]
    assert timing(seconds) == {
        "runs": 5,
        "p50_ms": 30.0,
        "p95_ms": 88.0,
        "min_ms": 10.0,
        "mean_ms": 40.0,
    }
    assert timing([1.5, 2.5], "s")["p50_s"] == 2.0
    assert timing([]) == {"runs": 0}


def test_ratio_is_how_many_times_faster_and_none_without_both() -> None:
    assert ratio(300.0, 100.0) == 3.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None


def test_stop_lengths_parse_and_reject_nonsense() -> None:
    assert stop_lengths("100,200,300") == [100, 200, 300]
    for text in ("", "a,b", "1", "100,-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            stop_lengths(text)


def test_decode_loops_name_each_loop_once_and_leave_the_setting_alone() -> None:
    before = os.environ.get("UME_CUDA_GRAPHS")
    assert decode_loops(torch.device("cpu")) == [("eager", True, "0"), ("eager", False, "0")]
    on_cuda = decode_loops(torch.device("cuda"))  # only the device's type is looked at
    pairs = [(loop, streamed) for loop, streamed, _ in on_cuda]
    assert len(pairs) == len(set(pairs))
    assert ("eager", True) in pairs and {"graph"} & {loop for loop, _ in pairs}
    with cuda_graphs("1"):
        assert os.environ["UME_CUDA_GRAPHS"] == "1"
    assert os.environ.get("UME_CUDA_GRAPHS") == before
