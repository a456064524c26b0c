#!/usr/bin/env python3
"""Markdown tables from run_conformance.py summaries.

    report.py A.json [B.json ...]          # scenario x run table, passed/failed
    report.py --failures A.json [...]      # every failed (and warned) check, with its message

A cell reads `passed/failed` (`+Nw` for warnings, `skip` for a skipped
scenario). Column headers are the files' basenames without .json.
"""

from __future__ import annotations

import json
import os
import sys


def load(paths):
    return [(os.path.basename(p).removesuffix(".json"), json.load(open(p))) for p in paths]


def cell(r):
    if r is None:
        return "—"
    if r.get("skipped") and not r["passed"] and not r["failed"]:
        return "skip"
    s = f"{r['passed']}/{r['failed']}"
    if r.get("warnings"):
        s += f" +{r['warnings']}w"
    return f"**{s}**" if r["failed"] else s


def table(runs):
    names: list[str] = []
    for _, d in runs:
        names += [n for n in d["scenarios"] if n not in names]
    print("| scenario | " + " | ".join(label for label, _ in runs) + " |")
    print("| --- |" + " --- |" * len(runs))
    for n in names:
        print(f"| {n} | " + " | ".join(cell(d["scenarios"].get(n)) for _, d in runs) + " |")
    totals = [d["totals"] for _, d in runs]
    print("| **total** | " + " | ".join(f"{t['passed']}/{t['failed']}" for t in totals) + " |")


def one_line(text, limit=300):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failures(runs):
    for label, d in runs:
        print(f"\n#### {label} ({d['harness']}, {d['url']})\n")
        any_ = False
        for n, r in d["scenarios"].items():
            for kind, items in (("FAIL", r.get("failures", [])), ("WARN", r.get("warningsDetail", []))):
                for f in items:
                    any_ = True
                    msg = one_line(f.get("errorMessage")) or one_line(f.get("description"))
                    print(f"- {kind} `{n}` / `{f.get('id')}`: {msg}")
        if not any_:
            print("- (no failed or warned checks)")


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "--failures":
        failures(load(args[1:]))
    else:
        table(load(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
