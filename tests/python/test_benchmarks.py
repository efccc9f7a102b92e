"""The benchmark programs run and print their tables (a smoke test at a tenth of the work, one round)."""

import pathlib
import random
import subprocess
import sys
import tempfile

from conftest import ROOT


def test_loop_core_benchmark_prints_a_row_per_workload():
    out = subprocess.run([sys.executable, ROOT / "benchmarks" / "loop_core.py", "--quick", "--rounds", "1"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    table, ahead, intervals, (context,) = (section.splitlines() for section in out.strip().split("\n\n"))
    header, *rows = table
    assert header.split()[-1] == "mioloop" and "asyncio" in header
    assert len(rows) == 7
    assert all(row.count("x)") == len(header.split()) - 4 for row in rows), out
    # one round: every other loop is counted, and no lead is called more than noise
    verdict, others, *counts = ahead
    assert verdict == "rounds mioloop was ahead, of 1: too few rounds to tell a lead from noise", out
    assert others.split() == header.split()[4:-1] and len(counts) == 7, out
    assert all(row.split()[-1] in ("0", "1") for row in counts), out
    # one round's ratio is its own median, and one round gives no interval
    title, others_again, *ratios = intervals
    assert title.startswith("mioloop to each loop, median of the rounds' ratios [95% interval]"), out
    assert others_again.split() == others.split() and len(ratios) == 7, out
    assert all("[" not in row and float(row.split()[-1]) > 0 for row in ratios), out
    # asyncio's and mioloop's call_soon_threadsafe keep the sender's context
    assert context.startswith("threadsafe callback in sender context") and context.split()[-1] == "yes", out
    assert context.split()[len(context.split()) - len(header.split()) + 4] == "yes", out


def test_futures_bridge_benchmark_prints_its_tables_and_writes_its_charts(tmp_path):
    out = subprocess.run([sys.executable, ROOT / "benchmarks" / "futures_bridge.py", "--quick", "--rounds", "1", "--svg", tmp_path],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT / "benchmarks").stdout
    for variant in ("mioloop (mioloop Future, mioloop Task)", "mioloop (mioloop Future, C Task)", "asyncio (C Future, C Task)"):
        assert variant in out, out
    assert not list(pathlib.Path(tempfile.gettempdir()).glob("async-runtimes-peer-*")), "the peer's copy is left behind"
    assert "mioloop.bridge.ready" in out and "pyo3 experimental-async" in out and "pyo3-async-runtimes (tokio)" in out
    for chart in ("futures-throughput.svg", "futures-round-trip.svg"):
        svg = (tmp_path / chart).read_text()
        assert svg.startswith("<svg") and svg.count("<rect") >= 3  # uvloop and rloop are optional


def test_offload_benchmark_prints_its_tables_and_writes_its_charts(tmp_path):
    out = subprocess.run([sys.executable, ROOT / "benchmarks" / "offload.py", "--quick", "--svg", tmp_path],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT / "benchmarks").stdout
    for variant in ("inline (hashlib)", "to_thread Python", "to_thread hashlib", "offload sha256"):
        assert f"asyncio  {variant}" in out and f"mioloop  {variant}" in out, out
    assert "round trip of an empty job" in out
    for chart, bars in (("offload-heartbeat.svg", 4), ("offload-speedup.svg", 8)):  # asyncio and mioloop at least
        svg = (tmp_path / chart).read_text()
        assert svg.startswith("<svg") and svg.count("<rect") >= bars


def test_echo_benchmark_serves_every_api_on_every_loop_and_checks_every_byte(tmp_path):
    out = subprocess.run([sys.executable, ROOT / "benchmarks" / "echo.py", "--quick", "--svg", tmp_path],
                         check=True, capture_output=True, text=True, timeout=600, cwd=ROOT / "benchmarks").stdout
    for api in ("protocol", "streams", "sock"):
        for size in ("1Ki", "64Ki"):
            assert out.count(f"{api:<9}{size:>7}") == 5, out  # req/s, MB/s, CPU per request, rounds ahead, ratios
    assert "mioloop" in out.splitlines()[1] and "asyncio" in out.splitlines()[1]
    for chart in ("echo-1k.svg", "echo-64k.svg"):
        assert (tmp_path / chart).read_text().count("<rect") >= 6


def test_a_lead_counts_as_more_than_noise_only_past_the_sign_tests_bar():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import loop_core
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # P(at least k of n rounds) for two equally fast loops: 5 of 5 is 1/32; 4 of 5 is 6/32, too likely
    assert [loop_core.wins_needed(n) for n in (1, 4, 5, 7, 9, 15, 30)] == [2, 5, 5, 7, 8, 12, 20]
    assert loop_core.round_order(["a", "b", "c"], 0) == ["a", "b", "c"] and loop_core.round_order(["a", "b", "c"], 1) == ["c", "b", "a"]


def test_the_interval_of_the_median_ratio_is_order_statistics_that_hold_the_median_19_times_in_20():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import loop_core
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # 15 rounds: the 4th smallest to the 4th largest (P(3 or fewer of 15 below the median) = 576/32768)
    assert loop_core.median_interval([r / 10 for r in range(15, 0, -1)]) == (0.8, (0.4, 1.2))
    assert loop_core.median_interval(range(1, 26))[1] == (8, 18) and loop_core.median_interval(range(1, 7))[1] == (1, 6)
    assert loop_core.median_interval([1.0, 1.1, 0.9, 1.2, 0.8]) == (1.0, None)  # 5 rounds: 1/32 > 2.5%, no interval
    # Two equally fast loops, noise of any shape (here skewed: one round in five slowed by half): the
    # interval of their ratio holds 1 in at least 95% of runs; the 6th to the 10th ratio would not.
    noise = random.Random(8)

    def rate():
        return noise.uniform(0.9, 1.1) * (0.5 if noise.random() < 0.2 else 1.0)

    runs = [sorted(rate() / rate() for _ in range(15)) for _ in range(4000)]
    assert all(loop_core.median_interval(ratios)[1] == (ratios[3], ratios[11]) for ratios in runs[:50])
    assert sum(ratios[3] <= 1 <= ratios[11] for ratios in runs) / len(runs) >= 0.95
    assert sum(ratios[5] <= 1 <= ratios[9] for ratios in runs) / len(runs) < 0.9


def test_echo_benchmark_measures_only_the_cells_asked_for():
    out = subprocess.run([sys.executable, ROOT / "benchmarks" / "echo.py", "--quick", "--apis", "sock", "--sizes", "1"],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT / "benchmarks").stdout
    assert out.count(f"{'sock':<9}{'1Ki':>7}") == 5 and "64Ki" not in out and "protocol" not in out, out
    refused = subprocess.run([sys.executable, ROOT / "benchmarks" / "echo.py", "--quick", "--apis", "sock,telnet"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT / "benchmarks")
    assert refused.returncode == 2 and "unknown API telnet" in refused.stderr, refused.stderr
