"""benchmarks/soak.py --smoke: the JSON report has, per backend and phase, an RSS and p50 series
of one entry per interval, the growth and drift computed from them as documented, and a
schedule that really opened, reset and closed streams."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
BACKENDS = ["onnxruntime", "native"]
# The smoke mode's shape (parse_args): 3,000 frames a phase, 4 streams, 6 intervals, 1 of warm-up.
PUSHES, STREAMS, INTERVALS, WARMUP = 3000, 4, 6, 1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("torch")  # the default model is built and exported here
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    # a higher churn than the default, so that 3,000 pushes see closes and resets in both phases
    run = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--smoke", "--backends", *BACKENDS,
                          "--close-p", "0.01", "--reset-p", "0.01", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("machine: ")
    return json.loads(out.read_text())


def test_report_shape(report):
    assert report["errors"] == 0
    assert report["machine"]["rss_source"] in ("psutil", "/proc/self/statm")
    assert report["targets"] == {"rss_growth_pct": 1.0, "p50_drift_pct": 5.0}
    assert sorted(report["results"]) == sorted(BACKENDS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("phase, streams", [("single", 1), ("many", STREAMS)])
def test_series_and_summary(report, backend, phase, streams):
    r = report["results"][backend][phase]
    calls = math.ceil(PUSHES / streams)
    assert (r["streams"], r["calls"], r["frames"]) == (streams, calls, calls * streams)
    series = r["intervals"]
    assert len(series) == INTERVALS
    assert [i["calls_end"] for i in series] == [round(calls * (k + 1) / INTERVALS) for k in range(INTERVALS)]
    rss = [i["rss_bytes"] for i in series]
    p50 = [i["p50_us_per_frame"] for i in series]
    assert all(isinstance(b, int) and 10 << 20 < b < 64 << 30 for b in rss), rss  # bytes, plausibly
    assert all(math.isfinite(q) and q > 0 for q in p50), p50
    # the summary is the documented arithmetic on the series
    assert r["rss_after_warmup_bytes"] == rss[WARMUP - 1] and r["rss_end_bytes"] == rss[-1]
    assert r["rss_growth_pct"] == pytest.approx(100 * (rss[-1] - rss[WARMUP - 1]) / rss[WARMUP - 1])
    assert r["p50_first_us"] == p50[WARMUP] and r["p50_last_us"] == p50[-1]
    assert r["p50_drift_pct"] == pytest.approx(100 * (p50[-1] - p50[WARMUP]) / p50[WARMUP])
    assert r["meets_targets"] == (r["rss_growth_pct"] < 1.0 and abs(r["p50_drift_pct"]) < 5.0)
    # the schedule churned streams and left at most the phase's stream count open (a fresh id is
    # not open until its first push)
    assert r["schedule"]["closes"] > 0 and r["schedule"]["resets"] > 0
    assert r["schedule"]["opened"] >= streams + r["schedule"]["closes"]  # every close is followed by a fresh id
    assert 0 < r["open_streams_end"] <= streams
