#!/usr/bin/env python3
"""An mcpod aggregate used as one server by the official Python SDK (mcp 2.x).

    aggregate_client.py URL

Connects to ONE Streamable HTTP URL with `Client(mode="auto")`, which probes
`server/discover` and speaks 2026-07-28, and checks what an aggregate of the
demo servers `files` (legacy, paged two tools at a time) and `git` (modern)
looks like through the SDK: the discovery, every page of tools/list under the
members' prefixes, a call routed to each member, and a tool's progress. One
JSON line per check on stdout, then {"summary": true, "ok": BOOL, ...}. Exit
0 only if every check passed. Bounded: the whole run has 60 s.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

MODERN_VERSION = "2026-07-28"
EXPECTED_TOOLS = {
    "files_echo", "files_add", "files_sleep", "files_progress", "files_notify_change", "files_stats",
    "git_echo", "git_notify_change", "git_stats",
}


class Checks:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def emit(self, name: str, ok: bool, detail: Any) -> None:
        self.results.append({"check": name, "ok": ok})
        print(json.dumps({"check": name, "ok": ok, "detail": detail}), flush=True)


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def run(url: str, checks: Checks) -> None:
    client = Client(streamable_http_client(url), mode="auto", read_timeout_seconds=20, cache=None)
    async with client:
        version = client.protocol_version
        info = client.server_info.model_dump(exclude_none=True) if client.server_info else None
        checks.emit(
            "connect",
            version == MODERN_VERSION and bool(info) and info.get("name") == "all",
            {"protocol_version": version, "server_info": info},
        )

        names: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
            pages += 1
            names.extend(t.name for t in page.tools)
            cursor = page.next_cursor
            if not cursor or pages > 10:
                break
        checks.emit(
            "tools_list_paged_across_members",
            set(names) == EXPECTED_TOOLS and len(names) == len(EXPECTED_TOOLS) and pages == 3,
            {"tools": names, "pages": pages},
        )

        legacy = text_of(await client.call_tool("files_echo", {"text": "via files"}))
        modern = text_of(await client.call_tool("git_echo", {"text": "via git"}))
        checks.emit(
            "calls_routed_by_prefix",
            legacy == "via files" and modern == "via git",
            {"files_echo": legacy, "git_echo": modern},
        )

        steps: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            steps.append(progress)

        result = await client.call_tool(
            "files_progress", {"steps": 3, "delay_ms": 1}, progress_callback=on_progress
        )
        checks.emit(
            "progress_through_a_member",
            len(steps) == 3 and not result.is_error,
            {"progress": steps},
        )


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    checks = Checks()

    async def bounded() -> None:
        with anyio.fail_after(60):
            await run(sys.argv[1], checks)

    try:
        anyio.run(bounded)
    except Exception as e:  # noqa: BLE001 - any SDK error fails the run
        checks.emit("harness", False, {"error": f"{type(e).__name__}: {e}"})
    passed = sum(1 for r in checks.results if r["ok"])
    ok = bool(checks.results) and passed == len(checks.results)
    print(json.dumps({"summary": True, "ok": ok, "client": "python-sdk", "era": "modern",
                      "passed": passed, "checks": len(checks.results)}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
