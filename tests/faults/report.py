"""Print a fault report (the JSON the fault suite appends to) as a Markdown table.

    .venv/bin/python -m tests.faults.report faults.json
"""

from __future__ import annotations

import json
import sys


def table(entries: list[dict]) -> str:
    lines = ["| scenario | produced | stored | lost | dup. | recovery (s) | criterion notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for e in entries:
        d = e.get("detail", {})
        notes = []
        if "not_captured_edge_down" in d:
            notes.append(f"captured {d['captured']}, not captured while the edge was down "
                         f"{d['not_captured_edge_down']}")
        if "hostile" in d:
            notes.append(f"{d['hostile']} bad payloads, all quarantined once")
        if "relay_out" in d:
            notes.append(f"relay: {d['relay_in']} messages in, {d['relay_out']} out, "
                         f"{d['displaced']} displaced")
        rec = "-" if e.get("recovery_s") is None else f"{e['recovery_s']:.1f}"
        lines.append(f"| {e['scenario']} | {e['produced']} | {e['stored']} | {e['lost']} | "
                     f"{e['duplicated']} | {rec} | {'; '.join(notes)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        print(table(json.load(fh)))
