# An MCP client in Python, driven by the Rust integration tests (tests/it/serve/python_clients.rs).
# Usage: python python-client.py URL KIND STEP [STEP…]   Prints one JSON object: { step: result, … }.
# KIND: `sdk` — the official SDK's ClientSession (package `mcp`) over Streamable HTTP, the initialize
# handshake; `fastmcp` — fastmcp.Client on a StreamableHttpTransport, as it connects by default
# (mode "auto": it probes `server/discover` and falls back to initialize; MCP_FASTMCP_MODE=legacy: the
# initialize handshake only).
# Steps (server-everything's tools): info, tools, echo, prompts, resources, subscribe, progress,
# sampling, elicit, roots. Both clients declare sampling, elicitation and roots (by giving a callback
# for each) and answer the way the TypeScript test client (sdk-client.mjs) does.
# MCP_TOOL_PREFIX=server__: the prefix of tool and prompt names (the gateway's merged endpoint); the
# names reported are the server's own (the prefix stripped, other servers' names left out).
# It exits 1 (with the error in the JSON under "error") at the first failing step.
import asyncio
import json
import os
import sys
import traceback
import warnings

import mcp_types as types

# subscribe_resource is deprecated (removed by the 2026-07-28 revision), not gone: say nothing of it.
warnings.simplefilter("ignore")

PREFIX = os.environ.get("MCP_TOOL_PREFIX", "")
# MCP_URI_PREFIX=mcpgate://server/: how the merged endpoint names this server's resource URIs;
# reported without it (another server's URIs keep theirs).
URI_PREFIX = os.environ.get("MCP_URI_PREFIX", "")


def own_uri(uri):
    uri = str(uri)
    return uri[len(URI_PREFIX) :] if URI_PREFIX and uri.startswith(URI_PREFIX) else uri
ELICIT_NAME = "Ada Lovelace"
ROOT = types.Root(uri="file:///tmp/mcpgate-python-root", name="python test root")
STEP_TIMEOUT = 30


def tool(name):
    return PREFIX + name


def own(names):
    """The server's own names among those listed (the prefix stripped)."""
    return sorted(n[len(PREFIX) :] for n in names if n.startswith(PREFIX))


def text(result):
    return "\n".join(c.text for c in result.content if c.type == "text")


class Asked:
    """What the server asked of the client, and what it told it."""

    def __init__(self):
        self.elicitations = 0
        self.samplings = 0
        self.roots = 0
        self.updated = []
        self.update = asyncio.Event()


asked = Asked()


async def on_message(message):
    if getattr(message, "method", None) == "notifications/resources/updated":
        asked.updated.append(str(message.params.uri))
        asked.update.set()


SAMPLED = types.CreateMessageResult(
    role="assistant", model="test-model", content=types.TextContent(type="text", text="sampled by the python client")
)
ELICITED = {"name": ELICIT_NAME, "check": True, "integer": 7}


class Sdk:
    """The official SDK: ClientSession over streamable_http_client, callbacks given to the session."""

    def __init__(self, url):
        self.url = url

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async def sampling(context, params):
            asked.samplings += 1
            return SAMPLED

        async def elicitation(context, params):
            asked.elicitations += 1
            return types.ElicitResult(action="accept", content=ELICITED)

        async def list_roots(context):
            asked.roots += 1
            return types.ListRootsResult(roots=[ROOT])

        self.stack = AsyncExitStack()
        read, write = await self.stack.enter_async_context(streamable_http_client(self.url))
        self.session = await self.stack.enter_async_context(
            ClientSession(
                read,
                write,
                sampling_callback=sampling,
                elicitation_callback=elicitation,
                list_roots_callback=list_roots,
                message_handler=on_message,
                client_info=types.Implementation(name="mcpgate-python-sdk-client", version="1.0.0"),
            )
        )
        try:
            await self.session.initialize()
        except BaseException:
            # What made initialize fail (a refused connection, say) is in the transport's task
            # group: closing the stack raises it in place of the cancellation seen here.
            if not await self.stack.__aexit__(*sys.exc_info()):
                raise
        return self

    async def __aexit__(self, *exc):
        await self.stack.aclose()

    def protocol(self):
        return self.session.protocol_version

    async def tools(self):
        return [t.name for t in (await self.session.list_tools()).tools]

    async def call(self, name, args, progress=None):
        return await self.session.call_tool(name, args, progress_callback=progress)

    async def prompts(self):
        return (await self.session.list_prompts()).prompts

    async def get_prompt(self, name):
        return await self.session.get_prompt(name, {})

    async def resources(self):
        return (await self.session.list_resources()).resources

    async def templates(self):
        return (await self.session.list_resource_templates()).resource_templates

    async def read(self, uri):
        return (await self.session.read_resource(uri)).contents

    def sdk_session(self):
        return self.session

    async def subscribe(self, uri):
        await self.session.subscribe_resource(uri)

    async def unsubscribe(self, uri):
        await self.session.unsubscribe_resource(uri)


class FastMcp:
    """fastmcp.Client: handlers given to the client, which builds the SDK session itself."""

    def __init__(self, url):
        self.url = url

    async def __aenter__(self):
        from fastmcp import Client
        from fastmcp.client.elicitation import ElicitResult
        from fastmcp.client.transports import StreamableHttpTransport

        def sampling(messages, params, context):
            asked.samplings += 1
            return SAMPLED

        async def elicitation(message, response_type, params, context):
            asked.elicitations += 1
            return ElicitResult(action="accept", content=ELICITED)

        def roots(context):
            asked.roots += 1
            return [ROOT]

        self.client = Client(
            StreamableHttpTransport(self.url),
            roots=roots,
            sampling_handler=sampling,
            elicitation_handler=elicitation,
            message_handler=on_message,
            client_info=types.Implementation(name="mcpgate-python-fastmcp-client", version="1.0.0"),
            mode=os.environ.get("MCP_FASTMCP_MODE", "auto"),
        )
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.client.__aexit__(*exc)

    def protocol(self):
        return self.client.protocol_version

    async def tools(self):
        return [t.name for t in await self.client.list_tools()]

    async def call(self, name, args, progress=None):
        # call_tool_mcp: the protocol's result as it came (call_tool would raise on isError).
        return await self.client.call_tool_mcp(name, args, progress_handler=progress)

    async def prompts(self):
        return await self.client.list_prompts()

    async def get_prompt(self, name):
        return await self.client.get_prompt(name, {})

    async def resources(self):
        return await self.client.list_resources()

    async def templates(self):
        return await self.client.list_resource_templates()

    async def read(self, uri):
        return await self.client.read_resource(uri)

    def sdk_session(self):
        return self.client.session

    # fastmcp.Client has no subscribe of its own: its SDK session's.
    async def subscribe(self, uri):
        await self.client.session.subscribe_resource(uri)

    async def unsubscribe(self, uri):
        await self.client.session.unsubscribe_resource(uri)


async def toggle_updates(c):
    """server-everything's simulated resource updates, on (first update at once) or off; one
    switch for every client of a stdio server, so whatever it was before, it ends as wanted."""
    return text(await c.call(tool("toggle-subscriber-updates"), {}))


def steps(c):
    async def info():
        return {"protocol": c.protocol()}

    async def tools():
        return own(await c.tools())

    async def echo():
        return text(await c.call(tool("echo"), {"message": "hello through mcpgate"}))

    async def prompts():
        listed = await c.prompts()
        simple = next((p for p in listed if not any(a.required for a in p.arguments or [])), listed[0])
        got = await c.get_prompt(simple.name)
        return {
            "names": own(p.name for p in listed),
            "got": simple.name[len(PREFIX) :],
            "messages": [m.content.text if m.content.type == "text" else m.content.type for m in got.messages],
        }

    async def resources():
        listed = await c.resources()
        templates = await c.templates()
        read = await c.read(str(listed[0].uri))
        return {
            "uris": [own_uri(r.uri) for r in listed],
            "templates": sorted(own_uri(t.uri_template) for t in templates),
            "first": own_uri(listed[0].uri),
            "read": [{"uri": own_uri(r.uri), "mimeType": r.mime_type, "text": getattr(r, "text", None)} for r in read],
        }

    async def subscribe():
        uri = next(str(r.uri) for r in await c.resources() if str(r.uri).startswith(URI_PREFIX + "demo://"))
        if c.protocol() == "2026-07-28":
            return await listen_for_update(uri)
        await c.subscribe(uri)
        if (await toggle_updates(c)).startswith("Stopped"):
            await toggle_updates(c)
        await asyncio.wait_for(asked.update.wait(), 10)
        if (await toggle_updates(c)).startswith("Started"):
            await toggle_updates(c)
        await c.unsubscribe(uri)
        return {"uri": own_uri(uri), "updated": own_uri(asked.updated[0])}

    async def listen_for_update(uri):
        # The revision's way (resources/subscribe is gone): a subscriptions/listen stream naming
        # the resource, its updates as events.
        from mcp.client.subscriptions import listen

        async with listen(c.sdk_session(), resource_subscriptions=[uri]) as sub:
            if (await toggle_updates(c)).startswith("Stopped"):
                await toggle_updates(c)
            event = await asyncio.wait_for(sub.__anext__(), 10)
            if (await toggle_updates(c)).startswith("Started"):
                await toggle_updates(c)
        return {"uri": own_uri(uri), "updated": own_uri(event.uri)}

    async def progress():
        seen = []

        async def on_progress(p, total, message):
            seen.append({"progress": p, "total": total})

        result = await c.call(tool("trigger-long-running-operation"), {"duration": 0.6, "steps": 3}, on_progress)
        return {"progress": seen, "text": text(result)}

    async def sampling():
        result = await c.call(tool("trigger-sampling-request"), {"prompt": "hi", "maxTokens": 10})
        return {"asked": asked.samplings, "text": text(result)}

    async def elicit():
        result = await c.call(tool("trigger-elicitation-request"), {})
        return {"asked": asked.elicitations, "text": text(result)}

    async def roots():
        result = await c.call(tool("get-roots-list"), {})
        # How often the server asked is not compared: server-everything asks on initialized (its
        # own session) and when a call finds no roots.
        return {"asked": asked.roots > 0, "text": text(result)}

    return {f.__name__: f for f in [info, tools, echo, prompts, resources, subscribe, progress, sampling, elicit, roots]}


async def main():
    url, kind, *wanted = sys.argv[1:]
    kinds = {"sdk": Sdk, "fastmcp": FastMcp}
    out = {}
    try:
        if kind not in kinds:
            raise ValueError(f"unknown client kind {kind} (sdk, fastmcp)")
        async with kinds[kind](url) as c:
            run = steps(c)
            for step in wanted:
                if step not in run:
                    raise ValueError(f"unknown step {step}")
                try:
                    out[step] = await asyncio.wait_for(run[step](), STEP_TIMEOUT)
                except Exception as e:
                    raise RuntimeError(f"step {step}: {e!r}") from e
    except BaseException as e:  # noqa: BLE001 — an ExceptionGroup from a task group too
        out["error"] = "".join(traceback.format_exception(e))
        print(json.dumps(out), flush=True)
        os._exit(1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
