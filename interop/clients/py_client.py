#!/usr/bin/env python3
"""Real-client end-to-end test on the official Python SDK (`mcp` 2.3.0).

    py_client.py URL [--era legacy|modern] [--timeout S] [--check-timeout S] [--schema FILE] [--only a,b] [--verbose]

Talks to ONE MCP Streamable HTTP URL with `mcp.Client` and checks a list of
behaviours against the fixture (interop/fixtures/conformance_server.py), one
JSON line per check on stdout: {"check": NAME, "ok": BOOL, "detail": ...},
then one summary line {"summary": true, "ok": BOOL, "passed": N, "failed": N, ...}.
Exit 0 only if every check passed (1: a check failed, 2: usage error).

--era legacy: `Client(mode="legacy")` - the initialize handshake at 2025-11-25,
  Mcp-Session-Id, server->client requests, GET stream, logging/setLevel,
  resources/subscribe. Results validated against the 2025-11-25 schema.
--era modern: `Client(mode="auto")`, which probes `server/discover` at
  2026-07-28; the check `connect` fails unless 2026-07-28 was negotiated (no
  silent fallback to the handshake). Per-request `_meta` envelope, logging
  through `Client(log_level=...)` (+ a per-request `_meta` override),
  sampling/elicitation/roots through the callbacks (the SDK drives the
  `input_required` rounds itself), `subscriptions/listen` for resource updates
  and list_changed. Results validated against the 2026-07-28 schema.

Everything the client receives is also recorded raw at the HTTP layer (an
httpx2 transport wrapper that tees each response body and parses the JSON or
SSE frames), so the schema checks see the wire, not the SDK's parsed models,
and the checks can tell the GET stream from a POST's response stream.
Bounded: every check has its own timeout, the whole run --timeout (default
60 s), and a watchdog thread hard-exits a few seconds after that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated, ToolsListChanged
from mcp.shared.exceptions import MCPDeprecationWarning

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
LOG_LEVEL_META_KEY = "io.modelcontextprotocol/logLevel"
WATCHED_URI = "test://watched-resource"
SIMPLE_TEXT = "This is a simple text response for testing."
EXPECTED_TOOLS = [
    "test_simple_text",
    "test_tool_with_progress",
    "test_tool_with_logging",
    "test_sampling",
    "test_elicitation",
    "test_list_roots",
    "test_slow",
    "test_slow_status",
    "test_trigger_tool_change",
    "test_trigger_resource_update",
    "test_input_required_result_multi_round",
]
SAMPLING_ANSWER = "py-client sampled answer"
ELICIT_ANSWER = "py-client says hi"
ROOTS = [{"uri": "file:///tmp/mcpod-py-client-root", "name": "py-root"}, {"uri": "file:///tmp/mcpod-py-client-other", "name": "py-other"}]
MODERN_ONLY_RESULT_FIELDS = ("resultType", "ttlMs", "cacheScope")

# Result schema per method, per revision.
RESULT_DEFS = {
    "initialize": "InitializeResult",
    "ping": "EmptyResult",
    "server/discover": "DiscoverResult",
    "subscriptions/listen": "SubscriptionsListenResult",
    "tools/list": "ListToolsResult",
    "tools/call": "CallToolResult",
    "logging/setLevel": "EmptyResult",
    "resources/subscribe": "EmptyResult",
    "resources/unsubscribe": "EmptyResult",
    "resources/list": "ListResourcesResult",
    "resources/templates/list": "ListResourceTemplatesResult",
    "resources/read": "ReadResourceResult",
    "prompts/list": "ListPromptsResult",
    "prompts/get": "GetPromptResult",
    "completion/complete": "CompleteResult",
}
NOTIFICATION_DEFS = {
    "notifications/progress": "ProgressNotification",
    "notifications/message": "LoggingMessageNotification",
    "notifications/cancelled": "CancelledNotification",
    "notifications/resources/updated": "ResourceUpdatedNotification",
    "notifications/resources/list_changed": "ResourceListChangedNotification",
    "notifications/tools/list_changed": "ToolListChangedNotification",
    "notifications/prompts/list_changed": "PromptListChangedNotification",
    "notifications/subscriptions/acknowledged": "SubscriptionsAcknowledgedNotification",
    "notifications/elicitation/complete": "ElicitationCompleteNotification",
}
SERVER_REQUEST_DEFS = {
    "ping": "PingRequest",
    "sampling/createMessage": "CreateMessageRequest",
    "elicitation/create": "ElicitRequest",
    "roots/list": "ListRootsRequest",
}
CACHEABLE_METHODS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "server/discover")


# ---------------------------------------------------------------- wire tap


class Wire:
    """Every JSON-RPC message that crossed the HTTP connection, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # {"dir","channel","t","msg","http"}
        self.requests: dict[Any, dict[str, Any]] = {}  # our request id -> our request
        self.http: list[dict[str, Any]] = []  # one entry per HTTP exchange
        self._lock = threading.Lock()

    def mark(self) -> int:
        return len(self.messages)

    def add(self, direction: str, channel: str, msg: Any, http_index: int | None) -> None:
        if not isinstance(msg, dict):
            return
        with self._lock:
            self.messages.append({"dir": direction, "channel": channel, "t": time.monotonic(), "msg": msg, "http": http_index})
            if direction == "out" and "method" in msg and "id" in msg:
                self.requests[_id_key(msg["id"])] = msg

    def since(self, mark: int) -> list[dict[str, Any]]:
        return self.messages[mark:]

    def method_of_response(self, msg: dict[str, Any]) -> str | None:
        req = self.requests.get(_id_key(msg.get("id")))
        return req.get("method") if req else None

    def incoming(self, mark: int = 0) -> list[dict[str, Any]]:
        return [m for m in self.messages[mark:] if m["dir"] == "in"]

    def notifications(self, method: str, mark: int = 0) -> list[dict[str, Any]]:
        return [m for m in self.incoming(mark) if m["msg"].get("method") == method and "id" not in m["msg"]]

    def out_requests(self, method: str, mark: int = 0) -> list[dict[str, Any]]:
        return [m for m in self.messages[mark:] if m["dir"] == "out" and m["msg"].get("method") == method and "id" in m["msg"]]

    def responses_to(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        key = _id_key(request.get("id"))
        return [m for m in self.incoming() if "method" not in m["msg"] and _id_key(m["msg"].get("id")) == key]


def _id_key(value: Any) -> str:
    return json.dumps(value)


class _SseParser:
    def __init__(self, on_message: Callable[[Any], None]) -> None:
        self._buf = ""
        self._on_message = on_message

    def feed(self, text: str) -> None:
        self._buf += text.replace("\r\n", "\n").replace("\r", "\n")
        while "\n\n" in self._buf:
            event, self._buf = self._buf.split("\n\n", 1)
            data = [line[5:].lstrip(" ") if line.startswith("data:") else None for line in event.split("\n")]
            payload = "\n".join(d for d in data if d is not None)
            if payload.strip():
                try:
                    self._on_message(json.loads(payload))
                except ValueError:
                    self._on_message({"_unparseable_sse_data": payload})


class _TapStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, on_chunk: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_chunk = on_chunk
        self._on_end = on_end
        self._ended = False

    async def __aiter__(self):  # type: ignore[override]
        try:
            async for chunk in self._inner:
                self._on_chunk(chunk)
                yield chunk
        finally:
            self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    async def aclose(self) -> None:
        self._end()
        await self._inner.aclose()


class TapTransport(httpx2.AsyncBaseTransport):
    """httpx2 transport that records every JSON-RPC message in both directions."""

    def __init__(self, wire: Wire) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._wire = wire

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        wire = self._wire
        entry: dict[str, Any] = {
            "http": request.method,
            "mcp_method": request.headers.get("mcp-method"),
            "protocol_version": request.headers.get("mcp-protocol-version"),
            "session": request.headers.get("mcp-session-id"),
        }
        out_msg: Any = None
        if request.method == "POST":
            try:
                out_msg = json.loads(request.content or b"null")
            except Exception:  # a streamed body: not what this SDK sends
                out_msg = None
            if isinstance(out_msg, dict):
                entry["rpc"] = out_msg.get("method") or "response"
        with wire._lock:
            wire.http.append(entry)
            index = len(wire.http) - 1
        channel = "get" if request.method == "GET" else "post"
        if out_msg is not None:
            wire.add("out", channel, out_msg, index)
        response = await self._inner.handle_async_request(request)
        entry["status"] = response.status_code
        if response.headers.get("mcp-session-id"):
            entry["session_assigned"] = True
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        entry["content_type"] = ctype
        if ctype == "text/event-stream":
            decoder_buf = bytearray()
            parser = _SseParser(lambda m: wire.add("in", channel, m, index))

            def on_chunk(chunk: bytes) -> None:
                decoder_buf.extend(chunk)
                try:
                    text = decoder_buf.decode("utf-8")
                except UnicodeDecodeError:
                    return  # a split multi-byte sequence: wait for the rest
                decoder_buf.clear()
                parser.feed(text)

            response.stream = _TapStream(response.stream, on_chunk, lambda: None)
        elif ctype == "application/json":
            body = bytearray()

            def on_end() -> None:
                try:
                    wire.add("in", channel, json.loads(bytes(body)), index)
                except ValueError:
                    pass

            response.stream = _TapStream(response.stream, body.extend, on_end)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# ---------------------------------------------------------------- schemas


class SchemaBook:
    def __init__(self, path: Path) -> None:
        from jsonschema import Draft202012Validator

        self._doc = json.loads(path.read_text())
        self._cls = Draft202012Validator
        self._validators: dict[str, Any] = {}
        self.path = path

    def has(self, name: str) -> bool:
        return name in self._doc["$defs"]

    def errors(self, name: str, instance: Any) -> list[str]:
        if not self.has(name):
            return [f"{name} is not defined in {self.path.name}"]
        validator = self._validators.get(name)
        if validator is None:
            schema = {"$schema": self._doc.get("$schema"), "$defs": self._doc["$defs"], "$ref": f"#/$defs/{name}"}
            validator = self._validators[name] = self._cls(schema)
        out = []
        for error in validator.iter_errors(instance):
            path = "/".join(str(p) for p in error.absolute_path)
            out.append(f"{name} at /{path}: {error.message[:200]}")
            if len(out) >= 3:
                break
        return out


def default_schema(revision: str) -> Path:
    env = os.environ.get("MCP_SCHEMA_DIR")
    if env:
        return Path(env) / f"{revision}.json"
    # interop/clients/ -> the repo root's mcp-schema/
    return Path(__file__).resolve().parents[2] / "mcp-schema" / f"{revision}.json"


# ---------------------------------------------------------------- harness


class Checks:
    def __init__(self, client_name: str, era: str, url: str, verbose: bool) -> None:
        self.results: list[dict[str, Any]] = []
        self.client_name = client_name
        self.era = era
        self.url = url
        self.verbose = verbose
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._summarized = False

    def emit(self, name: str, ok: bool, detail: Any) -> None:
        with self._lock:
            if self._summarized:
                return
            line = {"check": name, "ok": bool(ok), "detail": detail}
            self.results.append(line)
            print(json.dumps(line, default=str), flush=True)

    def summary(self, extra: dict[str, Any] | None = None) -> bool:
        with self._lock:
            if self._summarized:
                return all(r["ok"] for r in self.results)
            self._summarized = True
            failed = [r["check"] for r in self.results if not r["ok"]]
            line = {
                "summary": True,
                "client": self.client_name,
                "era": self.era,
                "url": self.url,
                "checks": len(self.results),
                "passed": len(self.results) - len(failed),
                "failed": len(failed),
                "failed_checks": failed,
                "ok": not failed and bool(self.results),
                "elapsed_ms": int((time.monotonic() - self.started) * 1000),
                **(extra or {}),
            }
            print(json.dumps(line, default=str), flush=True)
            return line["ok"]


def describe(e: BaseException) -> str:
    """`Type: message` of an exception, of each leaf of an (anyio) ExceptionGroup."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


class CheckFailed(Exception):
    def __init__(self, detail: Any) -> None:
        super().__init__(str(detail))
        self.detail = detail


def expect(cond: bool, detail: Any) -> None:
    if not cond:
        raise CheckFailed(detail)


class State:
    """What the client's callbacks saw."""

    def __init__(self) -> None:
        self.sampling_calls: list[dict[str, Any]] = []
        self.elicitation_calls: list[dict[str, Any]] = []
        self.roots_calls = 0
        self.logs: list[dict[str, Any]] = []
        self.notifications: list[tuple[float, Any]] = []


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        await anyio.sleep(interval)


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace, checks: Checks) -> None:
    era = args.era
    modern = era == "modern"
    wire = Wire()
    state = State()
    schema_path = Path(args.schema) if args.schema else default_schema(MODERN_VERSION if modern else LEGACY_VERSION)

    async def sampling_callback(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = " ".join(m.content.text for m in params.messages if isinstance(m.content, types.TextContent))
        state.sampling_calls.append({"prompt": prompt, "max_tokens": params.max_tokens})
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=SAMPLING_ANSWER), model="py-client-model", stop_reason="endTurn"
        )

    async def elicitation_callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        schema = getattr(params, "requested_schema", None) or {}
        props = schema.get("properties", {}) if isinstance(schema, dict) else {}
        state.elicitation_calls.append({"message": params.message, "properties": sorted(props)})
        content: dict[str, Any] = {}
        if "response" in props:
            content["response"] = ELICIT_ANSWER
        if "name" in props:
            content["name"] = "Ada"
        if "color" in props:
            content["color"] = "teal"
        return types.ElicitResult(action="accept", content=content)

    async def list_roots_callback(context: Any) -> types.ListRootsResult:
        state.roots_calls += 1
        return types.ListRootsResult(roots=[types.Root(uri=r["uri"], name=r["name"]) for r in ROOTS])

    async def logging_callback(params: types.LoggingMessageNotificationParams) -> None:
        state.logs.append({"t": time.monotonic(), "level": params.level, "data": params.data})

    async def message_handler(message: Any) -> None:
        state.notifications.append((time.monotonic(), message))

    http_client = httpx2.AsyncClient(
        transport=TapTransport(wire), timeout=httpx2.Timeout(30.0, read=300.0), follow_redirects=False
    )
    client = Client(
        streamable_http_client(args.url, http_client=http_client),
        mode="legacy" if not modern else "auto",
        read_timeout_seconds=args.check_timeout,
        sampling_callback=sampling_callback,
        elicitation_callback=elicitation_callback,
        list_roots_callback=list_roots_callback,
        logging_callback=logging_callback,
        message_handler=message_handler,
        client_info=types.Implementation(name="mcpod-interop-py-client", version="1.0.0"),
        # Per-request log opt-in at 2026-07-28 (no effect on a legacy connection).
        log_level="debug" if modern else None,
        # No client-side response cache: every list/read must reach the wire.
        cache=None,
    )

    only = set(args.only.split(",")) if args.only else None
    connected = False

    async def check(name: str, fn: Callable[[], Awaitable[Any]], timeout: float | None = None) -> None:
        if only is not None and name not in only:
            return
        try:
            with anyio.fail_after(timeout or args.check_timeout):
                detail = await fn()
            checks.emit(name, True, detail)
        except CheckFailed as e:
            checks.emit(name, False, e.detail)
        except TimeoutError:
            checks.emit(name, False, f"timed out after {timeout or args.check_timeout}s")
        except Exception as e:  # noqa: BLE001 - any SDK error fails this one check
            checks.emit(name, False, {"error": describe(e), "trace": traceback.format_exc(limit=3)[-600:]})

    async with http_client:
        # ---------------------------------------------------------- connect
        # Entered outside any per-check cancel scope (the SDK's task groups must
        # nest properly); the handshake itself is bounded by read_timeout_seconds,
        # the whole run by --timeout.
        t0 = time.monotonic()
        try:
            async with client:
                connected = True
                version = client.protocol_version
                detail: dict[str, Any] = {
                    "protocol_version": version,
                    "server_info": client.server_info.model_dump(exclude_none=True) if client.server_info else None,
                    "elapsed_ms": int((time.monotonic() - t0) * 1000),
                }
                if modern:
                    d = client.session.discover_result
                    detail["discover"] = {"supportedVersions": d.supported_versions} if d else None
                    ok = version == MODERN_VERSION and d is not None
                    checks.emit("connect", ok, detail if ok else {"expected": MODERN_VERSION + " via server/discover", **detail})
                else:
                    detail["session_id_assigned"] = any(h.get("session_assigned") for h in wire.http)
                    ok = version == LEGACY_VERSION
                    checks.emit("connect", ok, detail if ok else {"expected": LEGACY_VERSION, **detail})
                if ok:
                    await run_checks(args, client, wire, state, check, modern, checks)
                else:
                    connected = False
        except Exception as e:  # noqa: BLE001
            if not connected and not any(r["check"] == "connect" for r in checks.results):
                checks.emit("connect", False, {"error": describe(e), "trace": traceback.format_exc(limit=3)[-600:]})
            else:
                checks.emit("harness", False, {"error": describe(e), "trace": traceback.format_exc(limit=4)[-900:]})
        if not connected:
            return

        # ------------------------------------------------------ wire checks
        if only is None or "schema_valid" in only:
            wire_checks(checks, wire, schema_path, modern)


async def run_checks(
    args: argparse.Namespace, client: Client, wire: Wire, state: State, check: Any, modern: bool, checks: Checks
) -> None:
    def passed(name: str) -> bool:
        return any(r["check"] == name and r["ok"] for r in checks.results)

    async def c_tools_list() -> Any:
        result = await client.list_tools()
        names = [t.name for t in result.tools]
        missing = [n for n in EXPECTED_TOOLS if n not in names]
        expect(not missing, {"missing": missing, "listed": len(names)})
        return {"listed": len(names)}

    await check("tools_list", c_tools_list)

    async def c_simple_text() -> Any:
        result = await client.call_tool("test_simple_text", {})
        expect(not result.is_error and text_of(result) == SIMPLE_TEXT, {"text": text_of(result), "is_error": result.is_error})
        return {"text": text_of(result)}

    await check("call_simple_text", c_simple_text)

    if not modern:

        async def c_ping() -> Any:
            await client.send_ping()
            return "pong"

        await check("ping", c_ping)

    async def c_resources_read() -> Any:
        result = await client.read_resource(WATCHED_URI)
        texts = [c.text for c in result.contents if isinstance(c, types.TextResourceContents)]
        expect(texts and texts[0].startswith("Watched resource content"), {"contents": texts})
        return {"text": texts[0]}

    await check("resources_read", c_resources_read)

    # ------------------------------------------------------------ progress
    async def c_progress() -> Any:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        mark = wire.mark()
        result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
        await wait_for(lambda: len(seen) >= 3, 0.5)
        reqs = wire.out_requests("tools/call", mark)
        sent_token = ((reqs[0]["msg"].get("params") or {}).get("_meta") or {}).get("progressToken") if reqs else None
        raw = [m["msg"]["params"] for m in wire.notifications("notifications/progress", mark)]
        tokens = [p.get("progressToken") for p in raw]
        channels = sorted({m["channel"] for m in wire.notifications("notifications/progress", mark)})
        detail = {"callback": [[p, t] for p, t, _ in seen], "sent_token": sent_token, "wire_tokens": tokens, "channels": channels, "result": text_of(result)}
        expect([p for p, _, _ in seen] == [0, 50, 100] and all(t == 100 for _, t, _ in seen), detail)
        expect(sent_token is not None and tokens == [sent_token] * 3, detail)
        return detail

    await check("progress", c_progress)

    # ------------------------------------------------------------- logging
    async def logged_call(meta: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        first = len(state.logs)
        mark = wire.mark()
        result = await client.call_tool("test_tool_with_logging", {}, meta=meta)
        await anyio.sleep(0.3)  # stragglers on another stream
        logs = state.logs[first:]
        channels = sorted({m["channel"] for m in wire.notifications("notifications/message", mark)})
        return logs, {"result": text_of(result), "levels": [log["level"] for log in logs], "data": [log["data"] for log in logs], "channels": channels}

    async def c_logging_debug() -> Any:
        if not modern:
            await client.set_logging_level("debug")
            logs, detail = await logged_call(None)
        else:  # Client(log_level="debug") stamps the opt-in on every request
            logs, detail = await logged_call(None)
        info = [log for log in logs if log["level"] == "info"]
        expect(len(info) == 3, {"expected": "3 info messages", **detail})
        return detail

    await check("logging_debug", c_logging_debug)

    async def c_logging_error() -> Any:
        if not modern:
            await client.set_logging_level("error")
            logs, detail = await logged_call(None)
        else:  # a per-request _meta logLevel overrides the client default
            logs, detail = await logged_call({LOG_LEVEL_META_KEY: "error"})
        below = [log for log in logs if log["level"] in ("debug", "info", "notice", "warning")]
        expect(not below, {"expected": "no messages below error", **detail})
        expect(passed("logging_debug"), {"expected": "logging_debug to pass first (else this check is vacuous)", **detail})
        return detail

    await check("logging_error_filters", c_logging_error)
    if not modern and (args.only is None or "logging_error_filters" in args.only):
        try:
            with anyio.move_on_after(5):
                await client.set_logging_level("debug")  # back to chatty for the rest
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------- resources and list_changed
    def notes_since(t0: float, kind: type) -> list[Any]:
        return [n for t, n in state.notifications if t >= t0 and isinstance(n, kind)]

    if not modern:

        async def c_subscribe() -> Any:
            await client.subscribe_resource(WATCHED_URI)
            t0, mark = time.monotonic(), wire.mark()
            await client.call_tool("test_trigger_resource_update", {})
            got = await wait_for(
                lambda: [n for n in notes_since(t0, types.ResourceUpdatedNotification) if str(n.params.uri) == WATCHED_URI], 5
            )
            channels = sorted({m["channel"] for m in wire.notifications("notifications/resources/updated", mark)})
            expect(got, {"expected": f"notifications/resources/updated for {WATCHED_URI}", "got": 0})
            return {"updates": len(got), "channels": channels}

        await check("resource_subscribe", c_subscribe)

        async def c_unsubscribe() -> Any:
            await client.unsubscribe_resource(WATCHED_URI)
            t0 = time.monotonic()
            await client.call_tool("test_trigger_resource_update", {})
            await anyio.sleep(1.0)
            got = notes_since(t0, types.ResourceUpdatedNotification)
            expect(not got, {"expected": "no update after unsubscribe", "got": [str(n.params.uri) for n in got]})
            expect(passed("resource_subscribe"), "resource_subscribe did not pass: no update arrives at all, so this check would be vacuous")
            return {"updates": 0, "waited_s": 1.0}

        await check("resource_unsubscribe", c_unsubscribe)

        async def c_list_changed() -> Any:
            t0, mark = time.monotonic(), wire.mark()
            await client.call_tool("test_trigger_tool_change", {})
            got = await wait_for(lambda: notes_since(t0, types.ToolListChangedNotification), 5)
            channels = sorted({m["channel"] for m in wire.notifications("notifications/tools/list_changed", mark)})
            detail = {"notifications": len(got), "channels": channels}
            expect(got and channels == ["get"], {"expected": "tools/list_changed on the GET stream", **detail})
            return detail

        await check("list_changed", c_list_changed)
    else:

        async def c_listen_resource() -> Any:
            mark = wire.mark()
            async with client.listen(resource_subscriptions=[WATCHED_URI], tools_list_changed=True) as sub:
                honored = sub.honored.model_dump(by_alias=True, exclude_none=True)
                await client.call_tool("test_trigger_resource_update", {})
                events: list[Any] = []
                with anyio.move_on_after(5):
                    async for event in sub:
                        events.append(event)
                        if isinstance(event, ResourceUpdated):
                            break
            acks = wire.notifications("notifications/subscriptions/acknowledged", mark)
            updates = [e for e in events if isinstance(e, ResourceUpdated) and e.uri == WATCHED_URI]
            raw = wire.notifications("notifications/resources/updated", mark)
            tagged = all(((m["msg"].get("params") or {}).get("_meta") or {}).get("io.modelcontextprotocol/subscriptionId") == sub.subscription_id for m in raw)
            detail = {"honored": honored, "acks": len(acks), "events": [repr(e) for e in events], "tagged": tagged}
            expect(updates and tagged and WATCHED_URI in (honored.get("resourceSubscriptions") or []), detail)
            return detail

        await check("resource_subscribe", c_listen_resource)

        async def c_listen_no_resource() -> Any:
            mark = wire.mark()
            async with client.listen(tools_list_changed=True) as sub:
                await client.call_tool("test_trigger_resource_update", {})
                await anyio.sleep(1.0)
                await client.call_tool("test_trigger_tool_change", {})
                events: list[Any] = []
                with anyio.move_on_after(5):
                    async for event in sub:
                        events.append(event)
                        if isinstance(event, ToolsListChanged):
                            break
            raw_updates = wire.notifications("notifications/resources/updated", mark)
            detail = {"events": [repr(e) for e in events], "raw_resource_updates": len(raw_updates)}
            # "unsubscribed" at 2026-07-28 = a listen without that URI: no update may arrive on it
            expect(not raw_updates and any(isinstance(e, ToolsListChanged) for e in events), detail)
            return detail

        await check("resource_unsubscribe", c_listen_no_resource)

        async def c_listen_tools() -> Any:
            mark = wire.mark()
            async with client.listen(tools_list_changed=True) as sub:
                await client.call_tool("test_trigger_tool_change", {})
                events: list[Any] = []
                with anyio.move_on_after(5):
                    async for event in sub:
                        events.append(event)
                        break
            raw = wire.notifications("notifications/tools/list_changed", mark)
            listen_reqs = wire.out_requests("subscriptions/listen", mark)
            channels = sorted({m["channel"] for m in raw})
            detail = {"events": [repr(e) for e in events], "raw": len(raw), "channels": channels, "listen_requests": len(listen_reqs)}
            expect(any(isinstance(e, ToolsListChanged) for e in events), detail)
            return detail

        await check("list_changed", c_listen_tools)

    # ----------------------------------------- sampling / elicitation / roots
    def rounds_detail(mark: int, name: str) -> dict[str, Any]:
        calls = [m for m in wire.out_requests("tools/call", mark) if (m["msg"].get("params") or {}).get("name") == name]
        result_types = []
        retry_keys = []
        for m in calls:
            params = m["msg"].get("params") or {}
            if "inputResponses" in params:
                retry_keys.append(sorted(params["inputResponses"]))
            for r in wire.responses_to(m["msg"]):
                res = r["msg"].get("result")
                result_types.append(res.get("resultType", "<absent>") if isinstance(res, dict) else "error")
        server_requests = [m["msg"]["method"] for m in wire.incoming(mark) if "method" in m["msg"] and "id" in m["msg"]]
        return {"tools_call_posts": len(calls), "result_types": result_types, "retry_input_keys": retry_keys, "server_requests": server_requests}

    def expect_era_flow(rounds: dict[str, Any], server_method: str) -> None:
        if modern:
            # The SDK's input_required driver: first answer input_required, retried with inputResponses, ends complete.
            rt = rounds["result_types"]
            expect(
                len(rt) >= 2 and rt[0] == "input_required" and rt[-1] == "complete" and rounds["retry_input_keys"]
                and not rounds["server_requests"],
                {"expected": "input_required round(s) then complete, no server->client request", **rounds},
            )
        else:
            expect(
                rounds["tools_call_posts"] == 1 and server_method in rounds["server_requests"],
                {"expected": f"one tools/call and a {server_method} request from the server", **rounds},
            )

    async def c_sampling() -> Any:
        first = len(state.sampling_calls)
        mark = wire.mark()
        result = await client.call_tool("test_sampling", {"prompt": "What is 2+2?"})
        calls = state.sampling_calls[first:]
        rounds = rounds_detail(mark, "test_sampling")
        detail = {"text": text_of(result), "callback_calls": calls, **rounds}
        expect(len(calls) == 1 and "2+2" in calls[0]["prompt"], detail)
        expect(text_of(result) == f"LLM response: {SAMPLING_ANSWER}", detail)
        expect_era_flow(rounds, "sampling/createMessage")
        return detail

    await check("sampling", c_sampling)

    async def c_elicitation() -> Any:
        first = len(state.elicitation_calls)
        mark = wire.mark()
        result = await client.call_tool("test_elicitation", {"message": "Say something"})
        calls = state.elicitation_calls[first:]
        rounds = rounds_detail(mark, "test_elicitation")
        detail = {"text": text_of(result), "callback_calls": calls, **rounds}
        expected = 'User response: action=accept, content={"response":"' + ELICIT_ANSWER + '"}'
        expect(len(calls) == 1 and calls[0]["message"] == "Say something", detail)
        expect(text_of(result) == expected, {"expected": expected, **detail})
        expect_era_flow(rounds, "elicitation/create")
        return detail

    await check("elicitation", c_elicitation)

    async def c_multi_round() -> Any:
        first = len(state.elicitation_calls)
        mark = wire.mark()
        result = await client.call_tool("test_input_required_result_multi_round", {})
        calls = state.elicitation_calls[first:]
        rounds = rounds_detail(mark, "test_input_required_result_multi_round")
        detail = {"text": text_of(result), "callback_calls": [c["properties"] for c in calls], **rounds}
        expect(text_of(result) == "Ada likes teal.", detail)
        expect([c["properties"] for c in calls] == [["name"], ["color"]], detail)
        if modern:
            expect(rounds["result_types"] == ["input_required", "input_required", "complete"], detail)
        else:
            expect(rounds["tools_call_posts"] == 1 and rounds["server_requests"].count("elicitation/create") == 2, detail)
        return detail

    await check("elicitation_multi_round", c_multi_round)

    async def c_roots() -> Any:
        first = state.roots_calls
        mark = wire.mark()
        result = await client.call_tool("test_list_roots", {})
        rounds = rounds_detail(mark, "test_list_roots")
        text = text_of(result)
        try:
            got = json.loads(text)
        except ValueError:
            got = None
        detail = {"text": text, "callback_calls": state.roots_calls - first, **rounds}
        expect(got == {"roots": ROOTS}, {"expected": {"roots": ROOTS}, **detail})
        expect_era_flow(rounds, "roots/list")
        return detail

    await check("roots", c_roots)

    # -------------------------------------------------------- cancellation
    nonce = f"py-{uuid.uuid4().hex[:12]}"
    cancel_info: dict[str, Any] = {}

    async def c_cancel() -> Any:
        mark = wire.mark()
        t0 = time.monotonic()
        with anyio.move_on_after(0.4) as scope:
            await client.call_tool("test_slow", {"ms": 10000, "id": nonce})
        elapsed = time.monotonic() - t0
        cancel_info["done"] = True
        cancelled_frames = [m for m in wire.messages[mark:] if m["dir"] == "out" and m["msg"].get("method") == "notifications/cancelled"]
        detail = {
            "cancelled_caught": scope.cancelled_caught,
            "elapsed_ms": int(elapsed * 1000),
            "notifications_cancelled_sent": len(cancelled_frames),
        }
        expect(scope.cancelled_caught and elapsed < 2.0, detail)
        if not modern:  # legacy: the courtesy notifications/cancelled is the signal
            await wait_for(lambda: [m for m in wire.messages[mark:] if m["dir"] == "out" and m["msg"].get("method") == "notifications/cancelled"], 1.0)
            cancelled_frames = [m for m in wire.messages[mark:] if m["dir"] == "out" and m["msg"].get("method") == "notifications/cancelled"]
            detail["notifications_cancelled_sent"] = len(cancelled_frames)
            expect(cancelled_frames, detail)
        return detail

    await check("cancel_abort", c_cancel)

    async def c_cancel_server() -> Any:
        expect(cancel_info.get("done"), "cancel_abort did not run")
        status = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status = text_of(await client.call_tool("test_slow_status", {"id": nonce}))
            if status != "running":
                break
            await anyio.sleep(0.2)
        expect(status == "cancelled", {"expected": "cancelled", "status": status, "id": nonce})
        return {"status": status, "id": nonce}

    await check("cancel_reached_server", c_cancel_server)

    async def c_cancel_followup() -> Any:
        result = await client.call_tool("test_simple_text", {})
        expect(text_of(result) == SIMPLE_TEXT, {"text": text_of(result)})
        result = await client.call_tool("test_slow", {"ms": 50, "id": nonce + "-after"})
        expect(text_of(result) == "slept 50 ms", {"text": text_of(result)})
        return {"text": SIMPLE_TEXT, "slow": "slept 50 ms"}

    await check("cancel_followup_call", c_cancel_followup)


def wire_checks(checks: Checks, wire: Wire, schema_path: Path, modern: bool) -> None:
    incoming = wire.incoming()
    results = [m for m in incoming if "result" in m["msg"] and "method" not in m["msg"]]

    # --- every message validates against the negotiated revision's schema
    try:
        book = SchemaBook(schema_path)
    except Exception as e:  # noqa: BLE001
        checks.emit("schema_valid", False, {"error": f"cannot load schema {schema_path}: {e}"})
        book = None
    if book is not None:
        problems: list[Any] = []
        counts: dict[str, int] = {}
        for m in incoming:
            msg = m["msg"]
            if "method" in msg:
                envelope = "JSONRPCRequest" if "id" in msg else "JSONRPCNotification"
            else:
                envelope = "JSONRPCResultResponse" if "result" in msg else "JSONRPCErrorResponse"
            errs = book.errors(envelope, msg)
            kind = None
            if "method" in msg and "id" in msg:
                kind = SERVER_REQUEST_DEFS.get(msg["method"])
                if modern:
                    errs.append(f"server->client request {msg['method']} on a 2026-07-28 connection")
                elif kind is None:
                    errs.append(f"unknown server request {msg['method']}")
            elif "method" in msg:
                kind = NOTIFICATION_DEFS.get(msg["method"])
                if kind is None or not book.has(kind):
                    errs.append(f"notification {msg['method']} not defined at this revision")
                    kind = None
            elif "result" in msg:
                method = wire.method_of_response(msg)
                result = msg["result"]
                if modern and isinstance(result, dict) and result.get("resultType") == "input_required":
                    kind = "InputRequiredResult"
                else:
                    kind = RESULT_DEFS.get(method or "")
                if kind is not None:
                    errs += book.errors(kind, result)
                    kind = None  # validated the result alone
                else:
                    errs.append(f"result for unknown method {method}")
            if kind is not None:
                errs += book.errors(kind, msg)
            if "method" in msg:
                label = msg["method"]
            elif "result" in msg:
                label = f"result:{wire.method_of_response(msg)}"
            else:
                label = f"error:{wire.method_of_response(msg)}:{(msg.get('error') or {}).get('code')}"
            counts[label] = counts.get(label, 0) + 1
            if errs:
                problems.append({"message": label, "id": msg.get("id"), "errors": errs[:3]})
        checks.emit(
            "schema_valid",
            not problems and bool(incoming),
            {"schema": schema_path.name, "messages": len(incoming), "by_kind": counts, "problems": problems[:10]},
        )

    if modern:
        # --- 2026-07-28 results carry resultType; cacheable ones ttlMs + cacheScope
        bad = []
        for m in results:
            method = wire.method_of_response(m["msg"])
            res = m["msg"]["result"]
            missing = [] if "resultType" in res else ["resultType"]
            if method in CACHEABLE_METHODS:
                missing += [f for f in ("ttlMs", "cacheScope") if f not in res]
            if missing:
                bad.append({"method": method, "missing": missing})
        checks.emit("modern_result_fields", not bad and bool(results), {"results": len(results), "bad": bad[:10]})
    else:
        # --- a legacy client sees no modern-only result fields
        bad = []
        for m in results:
            res = m["msg"]["result"]
            extra = [f for f in MODERN_ONLY_RESULT_FIELDS if f in res]
            if extra:
                bad.append({"method": wire.method_of_response(m["msg"]), "fields": extra})
        server_info_meta = sum(1 for m in results if "io.modelcontextprotocol/serverInfo" in ((m["msg"]["result"].get("_meta") or {})))
        checks.emit(
            "no_modern_fields",
            not bad and bool(results),
            {"results": len(results), "bad": bad[:10], "results_with_meta_serverInfo": server_info_meta},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="MCP endpoint, e.g. http://127.0.0.1:3901/mcp")
    parser.add_argument("--era", choices=["legacy", "modern"], default="legacy", help="protocol the client speaks (default legacy)")
    parser.add_argument("--timeout", type=float, default=60.0, help="overall bound in seconds (default 60)")
    parser.add_argument("--check-timeout", type=float, default=15.0, help="bound per check in seconds (default 15)")
    parser.add_argument("--schema", help="JSON schema file (default: $MCP_SCHEMA_DIR or ../../mcp-schema/<revision>.json)")
    parser.add_argument("--only", help="comma-separated check names to run (connect always runs)")
    parser.add_argument("--verbose", action="store_true", help="SDK debug logs on stderr")
    args = parser.parse_args()
    if args.only:
        args.only = "connect," + args.only
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.CRITICAL)

    checks = Checks("py_client", args.era, args.url, args.verbose)

    def watchdog() -> None:
        checks.emit("overall_timeout", False, f"hard watchdog: run exceeded {args.timeout + 5:.0f}s")
        checks.summary({"aborted": True})
        sys.stdout.flush()
        os._exit(1)

    timer = threading.Timer(args.timeout + 5, watchdog)
    timer.daemon = True
    timer.start()

    async def bounded() -> None:
        with anyio.move_on_after(args.timeout) as scope:
            await run(args, checks)
        if scope.cancelled_caught:
            if not any(r["check"] == "connect" for r in checks.results):
                checks.emit("connect", False, f"no connection within --timeout {args.timeout}s")
            checks.emit("overall_timeout", False, f"run exceeded --timeout {args.timeout}s; later checks not run")

    try:
        anyio.run(bounded)
    except BaseException as e:  # noqa: BLE001 - report, never traceback-exit without a summary
        checks.emit("harness", False, {"error": describe(e), "trace": traceback.format_exc(limit=5)[-1500:]})
    timer.cancel()
    ok = checks.summary()
    sys.stdout.flush()
    # Skip interpreter teardown (lingering SDK tasks/threads): the result is already printed.
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
