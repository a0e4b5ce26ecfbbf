"""Copying segment files between members: how a new or lagging member catches up.

Raft snapshots in Kingbus are small manifests (see `kingbus.raft.cluster`); the binlog data
itself moves over the admin HTTP port, outside the Raft transport, so that neither side ever
holds or rewrites the whole store.  Because every member's segments are byte-identical (the
layout depends only on the Raft log), a member catches up by appending the bytes it lacks to
its last segment and then copying the following segments; the store re-verifies every
imported byte (CRC and transaction boundaries) before anything becomes visible.

Server side: `GET /store/segments` (listing) and `GET /store/segments/{name}?offset=N`
(committed bytes from N), both behind the admin bearer token because binlog data is as
sensitive as the database.  Client side: `catch_up()`, blocking, used before Raft starts and
from the snapshot-install path.
"""

from __future__ import annotations

import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kingbus.binlog.gtids import GtidSet
from kingbus.store.store import BinlogStore, StoreError, segment_name, segment_number

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024


class CatchUpError(Exception):
    pass


def add_routes(app: web.Application, store: BinlogStore, token: str) -> None:
    def authorized(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def listing(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        return web.json_response(
            {
                "committed_gtids": str(store.committed_gtids),
                "purged_gtids": str(store.purged_gtids),
                "segments": [
                    {
                        "name": s.name,
                        "size": s.size,
                        "sealed": s.sealed,
                        "previous_gtids": s.previous_gtids,
                        "source_file": s.source_file,
                    }
                    for s in store.segments()
                ],
            }
        )

    async def segment(request: web.Request) -> web.StreamResponse:
        if not authorized(request):
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        name = request.match_info["name"]
        try:
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "offset must be an integer"}, status=400)
        found = next((s for s in store.segments() if s.name == name), None)
        if found is None:
            return web.json_response({"error": f"no segment {name}"}, status=404)
        if not 0 <= offset <= found.size:
            return web.json_response({"error": f"offset {offset} outside 0..{found.size}"}, status=416)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = found.size - offset
        await response.prepare(request)
        pos = offset
        while pos < found.size:
            n = min(CHUNK, found.size - pos)
            try:
                data = store.read(name, pos, n)
            except StoreError:
                break  # purged meanwhile: the client sees a short body and retries elsewhere
            await response.write(data)
            pos += n
        await response.write_eof()
        return response

    app.router.add_get("/store/segments", listing)
    app.router.add_get("/store/segments/{name}", segment)


def _get(url: str, token: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(request, timeout=timeout)


def catch_up(
    store: BinlogStore,
    peers: Sequence[str],
    token: str,
    *,
    target: GtidSet | None = None,
    timeout: float = 30.0,
) -> GtidSet:
    """Copies what the local store lacks from the first peer that has it.

    Returns the committed set afterwards.  With `target`, raises CatchUpError unless the
    store ends up containing it.
    """
    errors: list[str] = []
    for peer in peers:
        try:
            _catch_up_from(store, peer.rstrip("/"), token, timeout)
        except (OSError, urllib.error.URLError, StoreError, CatchUpError, ValueError) as exc:
            errors.append(f"{peer}: {exc}")
            continue
        if target is None or target.issubset(store.committed_gtids):
            return store.committed_gtids
        errors.append(f"{peer}: has only {store.committed_gtids}")
    raise CatchUpError("catch-up failed: " + ("; ".join(errors) or "no peers to copy from"))


def _catch_up_from(store: BinlogStore, peer: str, token: str, timeout: float) -> None:
    with _get(f"{peer}/store/segments", token, timeout) as response:
        remote = json.load(response)
    remote_segments: list[dict[str, Any]] = remote["segments"]
    local = store.segments()
    if not remote_segments:
        return
    if local:
        names = [s["name"] for s in remote_segments]
        if local[-1].name not in names:
            if local[-1].sealed and _next_name(local[-1].name) in names:
                start = names.index(_next_name(local[-1].name))
            else:
                raise CatchUpError(f"{peer} no longer has {local[-1].name}; this member needs a full copy")
        else:
            start = names.index(local[-1].name)
    else:
        start = 0
    for seg in remote_segments[start:]:
        name = seg["name"]
        have = next((s.size for s in store.segments() if s.name == name), 0)
        if have >= seg["size"]:
            continue
        pos = have
        with _get(f"{peer}/store/segments/{name}?offset={pos}", token, timeout) as response:
            while True:
                data = response.read(CHUNK)
                if not data:
                    break
                store.import_data(name, pos, data)
                pos += len(data)
        store.finish_import(name, source_file=seg["source_file"])
        log.info("catch-up: %s now %d bytes (from %s)", name, pos, peer)


def _next_name(name: str) -> str:
    return segment_name(segment_number(name) + 1)
