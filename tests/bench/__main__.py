"""Run every benchmark in turn: ``python -m tests.bench [NAME ...]`` (``make bench``).

Each benchmark prints its figures as ratios to a baseline measured in the same run, so
results compare across noisy machines. Names: ingest, fresh, store, edge, sim, opcua.
Extra options go to one benchmark with ``python -m tests.bench.bench_<name> --help``.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = {
    "ingest": "tests.bench.bench_ingest",       # MQTT -> historian -> committed rows vs raw COPY
    "fresh": "tests.bench.bench_fresh",         # publish-to-visible latency at 50k samples/s
    "store": "tests.bench.bench_store",         # bytes per stored sample, realistic signals
    "edge": "tests.bench.bench_edge",           # outbox group commit, agent end to end
    "sim": "tests.bench.bench_sim",             # simulator update rate vs requested
    "opcua": "tests.bench.bench_opcua_sessions",  # OPC UA notifications delivered per session count
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = []
    for i, name in enumerate(names, 1):
        print(f"\n=== [{i}/{len(names)}] {name} ({BENCHMARKS[name]})", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", BENCHMARKS[name]])
        print(f"=== {name}: exit {rc} after {time.monotonic() - started:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
