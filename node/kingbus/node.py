"""One Kingbus member: the store, the Raft member, the syncer and the admin API, wired.

This is the only module that knows all the parts.  It implements the admin API's
`NodeControl` protocol (kingbus.api.control) on top of them, runs the periodic work
(metrics, retention, announcing this member in the replicated member directory, persisting
the member list), and turns the blocking Raft calls into awaitables with `asyncio.to_thread`
so the event loop never waits on Raft.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from kingbus.api import errors as api_errors
from kingbus.api.app import make_admin_app
from kingbus.api.control import SourceSpec
from kingbus.api.metrics import Metrics
from kingbus.api.server import AdminServer, serve_admin
from kingbus.binlog.gtids import GtidSet
from kingbus.config import Config, ConfigError, secret
from kingbus.raft import entries, transfer
from kingbus.raft.cluster import NotLeaderError, RaftError, RaftMember, RaftOptions
from kingbus.raft.secrets import SecretBox
from kingbus.raft.statemachine import StateMachine
from kingbus.raft.successor import Follower, choose_successor
from kingbus.server.accounts import load_accounts
from kingbus.server.identity import load_or_create_server_uuid
from kingbus.server.server import ReplicaServer
from kingbus.server.tlsmaterial import server_material
from kingbus.store.retention import RetentionPolicy, SegmentFacts, segments_to_purge
from kingbus.store.store import BinlogStore
from kingbus.upstream.syncer import Syncer, SyncerOptions, replica_uuid_for

log = logging.getLogger(__name__)

MEMBERS_FILE = "members.json"
WRITE_BACK_SECONDS = 0.25  # how stale the store's on-disk bytes may get before the next write-back


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Node:
    # How long a request waits for a new leader to apply entries of earlier terms (an election
    # settles in about a second) before it answers a retryable 503.
    current_state_wait_seconds = 5.0

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.token = secret(config.admin.token_file)
        self.raft_password = secret(config.raft.password_file)
        self.admin_url = config.admin.advertise
        self.metrics = Metrics()
        self.store = BinlogStore(
            self.data_dir / "binlog",
            segment_bytes=config.store.segment_bytes,
            fsync=config.raft.fsync == "always",
        )
        self.machine = StateMachine(self.store)
        self.secrets = SecretBox(self.raft_password)
        self.raft: RaftMember | None = None
        self.syncer: Syncer | None = None
        tls, rsa_key = server_material(config.mysql.tls)
        self.replica_server = ReplicaServer(
            store=self.store,
            bind=config.mysql.bind,
            server_id=config.mysql.server_id,
            server_uuid=load_or_create_server_uuid(self.data_dir),
            accounts=load_accounts(config.mysql.users),
            tls=tls,
            rsa_key=rsa_key,
            fast_auth=config.mysql.fast_auth,
            max_connections=config.mysql.max_connections,
        )
        self._replica_bytes_seen = 0
        self._refusals_seen = 0
        self._admin: AdminServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._catching_up = False
        self._started = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = make_admin_app(self, token=self.token, registry=self.metrics.registry)
        transfer.add_routes(app, self.store, self.token)
        self._admin = await serve_admin(app, self.config.admin.bind)
        self.metrics.set_identity(name=self.config.name, raft=self.config.raft.address, admin=self.admin_url)
        peers = await asyncio.to_thread(self._initial_peers)
        options = RaftOptions(
            address=self.config.raft.address,
            listen=self.config.raft.listen or self.config.raft.address,
            peers=tuple(peers),
            password=self.raft_password,
            data_dir=self.data_dir,
            fsync=self.config.raft.fsync == "always",
            entry_bytes=self.config.raft.entry_bytes,
            election_timeout=(
                self.config.raft.election_timeout_min_ms / 1000,
                self.config.raft.election_timeout_max_ms / 1000,
            ),
            journal_segment_bytes=self.config.raft.journal_segment_bytes,
            compaction_bytes=self.config.raft.compaction_bytes,
        )
        self.raft = await asyncio.to_thread(
            RaftMember, options, self.machine, catch_up=self._catch_up_blocking
        )
        mysql_host, mysql_port = _host_port(self.config.mysql.bind)
        self.syncer = Syncer(
            raft=self.raft,
            machine=self.machine,
            secrets=self.secrets,
            options=SyncerOptions(
                server_id=self.config.mysql.server_id,
                replica_uuid=replica_uuid_for(self.raft_password),
                entry_bytes=self.config.raft.entry_bytes,
                report_host=mysql_host,
                report_port=mysql_port,
            ),
            on_commit=self._on_syncer_commit,
        )
        self.syncer.start()
        await self.replica_server.start()
        for coro in (
            self._announce_loop(),
            self._metrics_loop(),
            self._retention_loop(),
            self._write_back_loop(),
            self._members_loop(),
            self._configured_source_loop(),
        ):
            self._tasks.append(asyncio.create_task(coro))
        log.info("node %s started: raft %s, admin %s", self.config.name, options.address, self.admin_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.replica_server.stop()
        if self.syncer is not None:
            await asyncio.to_thread(self.syncer.stop)
        if self.raft is not None:
            await asyncio.to_thread(self.raft.destroy)
        if self._admin is not None:
            await self._admin.stop()
        await asyncio.to_thread(self.store.close)

    # ------------------------------------------------------------------ joining and catch-up
    def _initial_peers(self) -> list[str]:
        """Config peers, plus members this node learnt earlier, plus a join through a seed."""
        peers = set(self.config.raft.peers)
        members_file = self.data_dir / MEMBERS_FILE
        if members_file.exists():
            peers.update(json.loads(members_file.read_text()))
        elif self.config.raft.join:
            peers.update(self._join_through_seeds())
        peers.discard(self.config.raft.address)
        return sorted(peers)

    def _join_through_seeds(self) -> list[str]:
        """First start of a member joining a running cluster: copy the data, then ask to be added."""
        seeds = list(self.config.raft.join)
        members: list[dict[str, Any]] = []
        for seed in seeds:
            try:
                with urllib.request.urlopen(f"{seed.rstrip('/')}/members", timeout=10) as response:
                    members = json.load(response)["members"]
                break
            except OSError as exc:
                log.warning("join: %s unreachable: %s", seed, exc)
        if not members:
            raise RaftError(f"cannot join: no seed of {seeds} answered")
        admins = [m["admin"] for m in members if m.get("admin")]
        self._catching_up = True
        try:
            transfer.catch_up(self.store, admins, self.token)
        finally:
            self._catching_up = False
        body = json.dumps(
            {"name": self.config.name, "raft": self.config.raft.address, "admin": self.admin_url}
        ).encode()
        for seed in seeds:
            request = urllib.request.Request(
                f"{seed.rstrip('/')}/members",
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30):
                    break
            except OSError as exc:
                log.warning("join: adding this member through %s failed: %s", seed, exc)
        else:
            raise RaftError("cannot join: no seed accepted this member")
        return [m["raft"] for m in members]

    def _catch_up_blocking(self, target: GtidSet) -> None:
        """Snapshot-install path (the Raft member's catch-up thread): copy missing segments
        from peers; raises CatchUpError if none has them."""
        admins = [
            m.admin for m in self.machine.state.members.values() if m.admin and m.admin != self.admin_url
        ]
        self._catching_up = True
        try:
            transfer.catch_up(self.store, admins, self.token, target=target)
        finally:
            self._catching_up = False

    # ------------------------------------------------------------------ NodeControl: reads
    def _raft(self) -> RaftMember:
        if self.raft is None:
            raise api_errors.Unavailable("the Raft member is still starting")
        return self.raft

    def _name_of(self, raft_address: str) -> str:
        for member in self.machine.state.members.values():
            if member.raft == raft_address:
                return member.name
        return raft_address

    def members(self) -> list[dict[str, Any]]:
        raft = self._raft()
        leader = raft.leader()
        directory = {m.raft: m for m in self.machine.state.members.values()}
        out = []
        for address in raft.member_addresses():
            info = directory.get(address)
            out.append(
                {
                    "name": info.name if info else address,
                    "raft": address,
                    "admin": info.admin if info else "",
                    "role": "leader" if address == leader else "follower",
                    "healthy": raft.is_connected(address),
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        raft = self._raft()
        leader = raft.leader()
        source = self.syncer.status() if self.syncer else {}
        segments = self.store.segments()
        return {
            "name": self.config.name,
            "role": raft.role(),
            "term": raft.term(),
            "leader": self._name_of(leader) if leader else None,
            "members": self.members(),
            "commit_index": raft.commit_index(),
            "last_applied": raft.last_applied(),
            "committed_gtid_set": str(self.store.committed_gtids),
            "purged_gtid_set": str(self.store.purged_gtids),
            "source": source,
            "store": {"bytes": self.store.total_bytes, "files": len(segments)},
            "replicas": self.replica_server.replicas(),
            "catching_up": self._catching_up or raft.store_behind(),
            "raft": {
                "log_entries": int(raft.status().get("log_len", 0)),
                "journal": raft.journal_stats(),
                "snapshots": raft.snapshot_stats(),
                "apply": dataclasses.asdict(self.machine.stats),
                "followers": raft.followers(),
            },
            "syncer": self.syncer.pipeline() if self.syncer else {},
        }

    def is_ready(self) -> tuple[bool, str]:
        if self.raft is None:
            return False, "starting"
        if self._catching_up or self.raft.store_behind():
            return False, "catching up from peers"
        if self.raft.leader() is None:
            return False, "no Raft leader"
        lag = self.raft.commit_index() - self.raft.last_applied()
        if lag > 0:
            return False, f"applying: {lag} committed entries behind"
        return True, "ok"

    def is_leader(self) -> bool:
        return self.raft is not None and self.raft.is_leader()

    def leader_admin_url(self) -> str | None:
        if self.raft is None:
            return None
        leader = self.raft.leader()
        if leader is None:
            return None
        for member in self.machine.state.members.values():
            if member.raft == leader:
                return member.admin or None
        return None

    # ------------------------------------------------------------------ NodeControl: mutations
    def _require_leader(self) -> RaftMember:
        raft = self._raft()
        if not raft.is_leader():
            raise api_errors.NotLeader(self.leader_admin_url())
        return raft

    async def _require_current_leader(self) -> RaftMember:
        """The leader, once its applied state is current, for requests that read the state
        to decide what to propose (a leader elected a moment ago may not yet have applied
        entries committed under earlier terms: deciding on that state could undo them)."""
        raft = self._require_leader()
        deadline = time.monotonic() + self.current_state_wait_seconds
        while not raft.state_is_current():
            if time.monotonic() >= deadline:
                raise api_errors.Unavailable(
                    "the leader is still applying entries of earlier terms", retryable=True
                )
            await asyncio.sleep(0.02)
            raft = self._require_leader()
        return raft

    async def _propose(self, entry: entries.Entry) -> None:
        raft = self._require_leader()
        try:
            await asyncio.to_thread(raft.propose_and_wait, entries.encode(entry))
        except NotLeaderError:
            raise api_errors.NotLeader(self.leader_admin_url()) from None
        except RaftError as exc:
            raise api_errors.Unavailable(exc.reason, retryable=exc.nothing_done) from None

    async def set_source(self, spec: SourceSpec, *, initial: bool = False) -> None:
        """`initial`: the configuration file's source, which the state machine applies only
        if the cluster has none yet when it applies the entry."""
        self._require_leader()
        if spec.start_gtid_set:
            try:
                GtidSet.parse(spec.start_gtid_set)
            except ValueError as exc:
                raise api_errors.BadRequest(f"start_gtid_set: {exc}") from None
        await self._propose(
            entries.SourceConfig(
                host=spec.host,
                port=spec.port,
                user=spec.user,
                password_enc=self.secrets.seal(spec.password),
                start_gtid_set=spec.start_gtid_set or "",
                semi_sync=spec.semi_sync,
                running=True,
                tls=spec.tls,
                tls_ca=spec.tls_ca,
                initial=initial,
            )
        )
        self._poke_syncer()

    async def _set_running(self, running: bool) -> None:
        await self._require_current_leader()
        current = self.machine.state.source
        if current is None:
            raise api_errors.Conflict("no source is configured; PUT /source first")
        if current.running != running:
            await self._propose(dataclasses.replace(current, running=running))
        self._poke_syncer()

    async def start_source(self) -> None:
        await self._set_running(True)

    async def stop_source(self) -> None:
        await self._set_running(False)

    def _poke_syncer(self) -> None:
        if self.syncer is not None:
            self.syncer.poke()

    async def add_member(self, name: str, raft: str, admin: str) -> None:
        member = await self._require_current_leader()
        for existing in self.machine.state.members.values():
            if existing.name == name and existing.raft != raft:
                raise api_errors.Conflict(f"a member named {name} exists with Raft address {existing.raft}")
            if existing.raft == raft and existing.name != name:
                raise api_errors.Conflict(f"Raft address {raft} belongs to member {existing.name}")
        if raft not in member.member_addresses():
            try:
                await asyncio.to_thread(member.add_member, raft)
            except RaftError as exc:
                raise api_errors.Conflict(exc.reason) from None
        await self._propose(entries.MemberInfo(name, raft, admin))

    async def remove_member(self, name: str) -> None:
        member = await self._require_current_leader()
        info = self.machine.state.members.get(name)
        address = info.raft if info else (name if name in member.member_addresses() else None)
        if address is None:
            raise api_errors.NotFound(f"no member named {name}")
        if address == self.config.raft.address:
            raise api_errors.Conflict("this member is the leader: transfer leadership before removing it")
        if address in member.member_addresses():
            try:
                await asyncio.to_thread(member.remove_member, address)
            except RaftError as exc:
                raise api_errors.Conflict(exc.reason) from None
        if info is not None:
            await self._propose(entries.MemberInfo(info.name, info.raft, info.admin, removed=True))

    async def transfer_leadership(self, to: str | None) -> None:
        member = self._require_leader()
        named = None
        if to:
            info = self.machine.state.members.get(to)
            named = info.raft if info else to
            if named not in member.member_addresses():
                raise api_errors.NotFound(f"no member named {to}")
            if named == self.config.raft.address:
                return  # a request forwarded to the member it names has nothing to do
        choice = choose_successor(await self._followers_for_succession(member), named)
        if choice.raft is None:
            raise api_errors.Conflict(choice.reason)
        try:
            await asyncio.to_thread(member.transfer_leadership, choice.raft)
        except RaftError as exc:
            raise api_errors.Conflict(exc.reason) from None

    async def _followers_for_succession(self, member: RaftMember) -> list[Follower]:
        """The leader's view of each follower plus whether the follower says it is catching
        up (its own /status, asked concurrently; no answer within 2 s counts as unknown)."""
        by_raft = {m.raft: m for m in self.machine.state.members.values()}
        followers = member.followers()

        async def catching_up(session: aiohttp.ClientSession, raft: str) -> bool | None:
            info = by_raft.get(raft)
            if info is None or not info.admin:
                return None
            try:
                async with session.get(info.admin.rstrip("/") + "/status") as response:
                    if response.status != 200:
                        return None
                    return bool((await response.json()).get("catching_up"))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
            states = await asyncio.gather(*(catching_up(session, f["raft"]) for f in followers))
        return [
            Follower(
                raft=f["raft"],
                name=by_raft[f["raft"]].name if f["raft"] in by_raft else f["raft"],
                connected=f["connected"],
                match_index=f["match_index"],
                catching_up=state,
            )
            for f, state in zip(followers, states, strict=True)
        ]

    # ------------------------------------------------------------------ background work
    def _on_syncer_commit(self, txns: int, size: int) -> None:
        self.metrics.record_commit(txns, size)

    async def _announce_loop(self) -> None:
        """Puts this member into the replicated directory (name -> Raft, admin URL)."""
        me = entries.MemberInfo(self.config.name, self.config.raft.address, self.admin_url)
        while True:
            await asyncio.sleep(1.0)
            raft = self.raft
            if raft is None or raft.leader() is None:
                continue
            if self.machine.state.members.get(me.name) == me:
                await asyncio.sleep(4.0)
                continue
            done = asyncio.get_running_loop().create_future()

            def callback(reason: str | None, fut: asyncio.Future[str | None] = done) -> None:
                def settle() -> None:
                    if not fut.done():
                        fut.set_result(reason)

                fut.get_loop().call_soon_threadsafe(settle)

            raft.propose(entries.encode(me), callback)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, 10)

    async def _configured_source_loop(self) -> None:
        """Applies the config file's `source` section once, through the leader, when the
        cluster has no source yet.  After that the replicated setting (PUT /source) wins: a
        restart with an older file never re-points a running cluster."""
        wanted = self.config.source
        if wanted is None:
            return
        while self.machine.state.source is None:
            await asyncio.sleep(1.0)
            if self.machine.state.source is not None or not self.is_leader():
                continue
            try:
                spec = SourceSpec(
                    host=wanted.host,
                    port=wanted.port,
                    user=wanted.user,
                    password=secret(wanted.password_file, allow_empty=True),
                    start_gtid_set=wanted.start_gtid_set,
                    semi_sync=wanted.semi_sync,
                    tls=wanted.tls,
                    tls_ca=wanted.tls_ca_file.read_text() if wanted.tls_ca_file else "",
                )
                # This member's applied state may lag the committed log (a restart, a new
                # leader that has not committed in its term yet): the entry itself says it
                # only applies to a cluster without a source.
                await self.set_source(spec, initial=True)
                log.info("source %s:%d proposed from the configuration file", wanted.host, wanted.port)
            except (api_errors.ApiError, ConfigError, OSError) as exc:
                log.warning("cannot apply the configured source yet: %s", exc)

    async def _members_loop(self) -> None:
        """Remembers the Raft members on disk, for restarts of members that joined later."""
        last: list[str] = []
        path = self.data_dir / MEMBERS_FILE
        while True:
            await asyncio.sleep(2.0)
            if self.raft is None:
                continue
            current = self.raft.member_addresses()
            if current != last:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(current))
                tmp.replace(path)
                last = current

    async def _metrics_loop(self) -> None:
        attempts_seen = 0
        pre_votes_seen = 0
        held_seen = 0
        while True:
            await asyncio.sleep(1.0)
            raft = self.raft
            if raft is None:
                continue
            source = self.syncer.status() if self.syncer else {}
            self.metrics.set_role(raft.role())
            self.metrics.set_raft_progress(
                term=raft.term(), commit_index=raft.commit_index(), applied_index=raft.last_applied()
            )
            self.metrics.set_source_state(str(source.get("state", "stopped")))
            self.metrics.source_lag_seconds.set(float(str(source.get("lag_seconds", 0.0))))
            self.metrics.set_store(nbytes=self.store.total_bytes, files=len(self.store.segments()))
            pre_votes = raft.pre_vote_rounds()
            if pre_votes > pre_votes_seen:
                self.metrics.raft_pre_vote_rounds.inc(pre_votes - pre_votes_seen)
                pre_votes_seen = pre_votes
            held = raft.sends_held()
            if held > held_seen:
                self.metrics.raft_sends_held.inc(held - held_seen)
                held_seen = held
            if self.syncer is not None and self.syncer.attempts > attempts_seen:
                self.metrics.source_reconnects.inc(self.syncer.attempts - attempts_seen)
                attempts_seen = self.syncer.attempts
            self.metrics.replicas_connected.set(len(self.replica_server.registry.sessions()))
            self.metrics.set_replicas(self.replica_server.replicas())
            self.metrics.client_connections.set(self.replica_server.connections)
            refused = self.replica_server.connections_refused
            if refused > self._refusals_seen:
                self.metrics.connections_refused.inc(refused - self._refusals_seen)
                self._refusals_seen = refused
            sent = self.replica_server.registry.total_bytes_sent()
            if sent > self._replica_bytes_seen:
                self.metrics.replica_bytes_sent.inc(sent - self._replica_bytes_seen)
                self._replica_bytes_seen = sent

    async def _write_back_loop(self) -> None:
        """Sends the store's new bytes to disk a quarter second at a time, off Raft's tick
        thread, so that the checkpoint of each log compaction, which runs on that thread,
        finds little left to sync (see BinlogStore.write_back)."""
        while True:
            await asyncio.sleep(WRITE_BACK_SECONDS)
            try:
                await asyncio.to_thread(self.store.write_back)
            except OSError as exc:  # the checkpoint will sync (and report) what this could not
                log.warning("store write-back failed: %s", exc)

    async def _retention_loop(self) -> None:
        policy = RetentionPolicy(
            max_bytes=self.config.store.retention_bytes, max_age_seconds=self.config.store.retention_seconds
        )
        while True:
            await asyncio.sleep(self.config.store.retention_check_seconds)
            segments = self.store.segments()
            facts = [
                SegmentFacts(s.name, s.size, s.sealed, _newest_timestamp(segments, i))
                for i, s in enumerate(segments)
            ]
            names = segments_to_purge(
                facts, policy, now=time.time(), oldest_needed=self.replica_server.oldest_needed()
            )
            if names:
                log.info("retention: purging %s", ", ".join(names))
                await asyncio.to_thread(self.store.purge, names)


def _newest_timestamp(segments: list[Any], i: int) -> int:
    # A segment's newest transaction is at most as new as the next segment's first one.
    if i + 1 < len(segments):
        return int(segments[i + 1].first_timestamp)
    return 0
