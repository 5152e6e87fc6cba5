"""A scripted MCP server for Weft's tests, on the `mcp` package's low-level `Server` (the version
the reference environment pins), over stdio: what FastMCP never does.

* Its tool listing comes in pages of $PAGE_SIZE tools (3 by default), each page but the last with a
  `nextCursor`: tools `tool_00` ... `tool_06`, then `flaky`.
* Tool `flaky` answers the MCP error "Unknown tool: flaky" (a JSON-RPC error, which WayFlow's
  retry classification retries) to its first $FLAKY_FAILS calls (2 by default), then
  `flaky:<text> after <n> attempts`. Every other tool answers `<name>:<text>`.
* Every `tools/list` and `tools/call` request is appended to $MCP_LOG as a JSON line
  (`{"method": ..., "cursor": ...}` or `{"method": ..., "tool": ...}`), so tests count them.

Usage: mcp_paged_server.py   (speaks MCP on stdin and stdout)
"""
import json
import os

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import McpError

PAGE_SIZE = int(os.environ.get("PAGE_SIZE", "3"))
FLAKY_FAILS = int(os.environ.get("FLAKY_FAILS", "2"))
LOG = os.environ.get("MCP_LOG")

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TOOLS = [types.Tool(name=f"tool_{i:02d}", description=f"Tool number {i}", inputSchema=SCHEMA) for i in range(7)]
TOOLS.append(types.Tool(name="flaky", description="Fails, then works", inputSchema=SCHEMA))

server = Server("paged")
calls = {"flaky": 0}


def log(entry):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


@server.list_tools()
async def list_tools(request: types.ListToolsRequest) -> types.ListToolsResult:
    cursor = request.params.cursor if request.params else None
    log({"method": "tools/list", "cursor": cursor})
    start = int(cursor) if cursor else 0
    end = start + PAGE_SIZE
    return types.ListToolsResult(tools=TOOLS[start:end], nextCursor=str(end) if end < len(TOOLS) else None)


async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
    name = request.params.name
    text = (request.params.arguments or {}).get("text", "")
    log({"method": "tools/call", "tool": name})
    if name == "flaky":
        calls["flaky"] += 1
        if calls["flaky"] <= FLAKY_FAILS:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message="Unknown tool: flaky"))
        text = f"{text} after {calls['flaky']} attempts"
    result = types.CallToolResult(content=[types.TextContent(type="text", text=f"{name}:{text}")], isError=False)
    return types.ServerResult(result)


# Registered as the raw handler, so an McpError reaches the client as a JSON-RPC error (the
# decorator would turn it into an `isError` result).
server.request_handlers[types.CallToolRequest] = call_tool


async def main():
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


anyio.run(main)
