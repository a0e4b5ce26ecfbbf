"""kopf wiring: one timer per KingbusCluster runs gather -> decide -> act -> report.

Theory of operation
-------------------
The reconcile is level-based: every pass (``KINGBUS_OPERATOR_RESYNC_SECONDS``, default 10 s,
counted from the end of the previous pass) re-reads the world instead of trusting a diff:

* **gather** reads the cluster's objects, pods, nodes, claims and volumes from the Kubernetes
  API, the Raft view from the members' admin API (the leader's own report when it answers),
  the source credentials, and, only when ``spec.source`` differs from what the leader streams
  from, the candidate source's ``gtid_executed``.  The result is a frozen :class:`facts.Facts`.
* **decide** (pure) picks one action.
* **act** performs it and posts a typed Event (``Normal`` for a step taken, ``Warning`` for a
  refusal or a failed step).  A refusal or a degraded wait posts its Event only when it differs
  from the previous pass's (``status.lastAction``), so an unchanged cluster posts nothing.
* **report** writes ``.status`` only when the document changed.

Secrets (the generated Raft password and admin token, the source password) are read here and
handed to the node client or the Kubernetes API; they are never logged and never part of facts,
status or Events.

Seams: :data:`SEAMS` holds the node-client factory and the source prober.  The control-plane
test tier replaces the node client (pods never run there); nothing else is replaced.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from kingbus_operator import crd, names, nodeclient, render, report, sourceprobe
from kingbus_operator import decide as d
from kingbus_operator.facts import (
    ClaimFact,
    DesiredSource,
    Facts,
    KubeNodeFact,
    MemberFact,
    PodFact,
    RaftFact,
    SourceFact,
    StatefulSetFact,
)
from kingbus_operator.kubeapi import Kube, KubeError

RESYNC_SECONDS = float(os.environ.get("KINGBUS_OPERATOR_RESYNC_SECONDS", "10"))
FINALIZER = "kingbus.io/operator"
CA_KEY = "ca.crt"  # the key of spec.source.tls.caSecretName holding the CA (as cert-manager names it)
Obj = dict[str, Any]


@dataclass
class Seams:
    """Where the operator reaches outside Kubernetes; tests may replace these, and only these."""

    node_client: Callable[[str], nodeclient.NodeClient] = nodeclient.HttpNodeClient
    source_prober: sourceprobe.SourceProber = field(default_factory=sourceprobe.MySQLSourceProber)
    clock: Callable[[], float] = time.time


SEAMS = Seams()


def _key(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _secret_value(secret: Mapping[str, Any] | None, key: str) -> str | None:
    if not secret:
        return None
    raw = (secret.get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw is not None else None


@dataclass
class Pass:
    """One reconcile pass over one KingbusCluster (the secrets it read stay in here)."""

    kube: Kube
    body: Mapping[str, Any]
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    admin_token: str | None = None
    source_password: str | None = None
    source_ca: str = ""  # the CA (PEM) from spec.source.tls.caSecretName, when TLS is enabled
    rendered: dict[str, Obj] = field(default_factory=dict)
    leader_admin: str | None = None

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    def owner(self) -> render.Owner:
        return render.Owner(self.name, self.namespace, str(self.body["metadata"]["uid"]))

    # ---------------------------------------------------------------- gather

    async def gather(self, spec: crd.ClusterSpec, bootstrap: int) -> Facts:
        ns, cluster = self.namespace, self.name
        now = SEAMS.clock()
        sts_doc = await self.kube.get("StatefulSet", ns, names.statefulset(cluster))
        sts_replicas = int(sts_doc["spec"]["replicas"]) if sts_doc else bootstrap
        missing: list[str] = []
        drifted: list[str] = []
        for secret_name in (names.raft_secret(cluster), names.admin_token_secret(cluster)):
            secret = await self.kube.get("Secret", ns, secret_name)
            if secret is None:
                missing.append(f"Secret/{secret_name}")
            elif secret_name == names.admin_token_secret(cluster):
                self.admin_token = _secret_value(secret, render.ADMIN_TOKEN_KEY)
        pods = await self._pods()
        nodes = await self._nodes()
        claims = await self._claims()
        raft = await self._raft(pods, sts_replicas)
        # Founded once every founding member is a healthy member: the ConfigMap gets its
        # "founded" key in that same pass, before the cluster is first reported Ready.
        healthy = {m.name for m in raft.members if m.healthy} if raft else set()
        founded = bool((self.body.get("status") or {}).get("founded")) or all(
            names.member(cluster, i) in healthy for i in range(bootstrap)
        )
        inp = render.RenderInput(self.owner(), spec, bootstrap, sts_replicas, founded)
        for obj in render.managed_objects(inp):
            self.rendered[_key(obj)] = obj
            observed = (
                sts_doc
                if obj["kind"] == "StatefulSet"
                else await self.kube.get(obj["kind"], ns, obj["metadata"]["name"])
            )
            if observed is None:
                missing.append(_key(obj))
            elif render.patch_for(obj, observed) is not None:
                drifted.append(_key(obj))
        sts = None
        if sts_doc:
            sts = StatefulSetFact(sts_replicas, (sts_doc.get("status") or {}).get("updateRevision"))
        desired, problem = await self._desired_source(spec)
        probe = None
        if desired and raft and d.source_differs(raft.source, desired):
            probe = await SEAMS.source_prober.probe(
                host=desired.host, port=desired.port, user=desired.user, password=self.source_password or ""
            )
        return Facts(
            cluster=cluster,
            namespace=ns,
            generation=int(self.body["metadata"].get("generation", 0)),
            spec=spec,
            now=now,
            missing=tuple(missing),
            drifted=tuple(drifted),
            statefulset=sts,
            pods=pods,
            nodes=nodes,
            claims=claims,
            raft=raft,
            desired_source=desired,
            source_problem=problem,
            source_probe=probe,
        )

    async def _pods(self) -> tuple[PodFact, ...]:
        out = []
        for pod in await self.kube.list("Pod", self.namespace, selector=names.selector(self.name)):
            meta, status = pod["metadata"], pod.get("status") or {}
            ordinal = names.ordinal(self.name, meta["name"])
            if ordinal is None:
                continue
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            out.append(
                PodFact(
                    name=meta["name"],
                    ordinal=ordinal,
                    node=(pod.get("spec") or {}).get("nodeName"),
                    running=status.get("phase") == "Running",
                    ready=conditions.get("Ready") == "True",
                    terminating=meta.get("deletionTimestamp") is not None,
                    revision=(meta.get("labels") or {}).get("controller-revision-hash"),
                )
            )
        return tuple(sorted(out, key=lambda p: p.ordinal))

    async def _nodes(self) -> dict[str, KubeNodeFact]:
        out = {}
        for node in await self.kube.list("Node"):
            ready = next(
                (c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None
            )
            is_ready = bool(ready and ready["status"] == "True")
            since = None if is_ready or ready is None else _parse_time(ready.get("lastTransitionTime"))
            name = node["metadata"]["name"]
            out[name] = KubeNodeFact(name, is_ready, since)
        return out

    async def _claims(self) -> tuple[ClaimFact, ...]:
        volumes = {pv["metadata"]["name"]: pv for pv in await self.kube.list("PersistentVolume")}
        expandable = {
            sc["metadata"]["name"]
            for sc in await self.kube.list("StorageClass")
            if sc.get("allowVolumeExpansion")
        }
        out = []
        for pvc in await self.kube.list(
            "PersistentVolumeClaim", self.namespace, selector=names.selector(self.name)
        ):
            claim = pvc["metadata"]["name"]
            prefix = "data-"
            ordinal = names.ordinal(self.name, claim[len(prefix) :]) if claim.startswith(prefix) else None
            if ordinal is None:
                continue
            pv = volumes.get((pvc.get("spec") or {}).get("volumeName") or "")
            local, node = _node_locality(pv)
            spec = pvc.get("spec") or {}
            out.append(
                ClaimFact(
                    claim,
                    ordinal,
                    node,
                    node_local=local,
                    terminating="deletionTimestamp" in pvc["metadata"],
                    requested=((spec.get("resources") or {}).get("requests") or {}).get("storage"),
                    expandable=spec.get("storageClassName") in expandable,
                )
            )
        return tuple(out)

    async def _raft(self, pods: tuple[PodFact, ...], sts_replicas: int) -> RaftFact | None:
        if not self.admin_token:
            return None
        client = _client_for(self.namespace, self.name, self.admin_token)
        doc: Mapping[str, Any] | None = None
        for ordinal in d.status_order(pods):
            try:
                doc = await client.status(names.admin_url(self.name, self.namespace, ordinal))
                break
            except nodeclient.NodeError as exc:
                self.logger.debug(f"member {ordinal} did not answer: {exc}")
        if doc is None:
            return None
        leader = doc.get("leader")
        admins = {m.get("name"): m.get("admin") for m in doc.get("members") or []}
        if leader and doc.get("name") != leader:
            leader_admin = admins.get(leader) or ""
            try:
                doc = await client.status(leader_admin)
            except nodeclient.NodeError as exc:
                self.logger.debug(f"leader {leader} did not answer: {exc}")
        if leader:
            self.leader_admin = admins.get(leader)
            if not self.leader_admin:
                leader_ordinal = names.ordinal(self.name, str(leader))
                if leader_ordinal is not None:
                    self.leader_admin = names.admin_url(self.name, self.namespace, leader_ordinal)
        return _named_by_pod(_raft_fact(doc), self.name, self.namespace, sts_replicas, len(pods))

    async def _desired_source(self, spec: crd.ClusterSpec) -> tuple[DesiredSource | None, str | None]:
        src = spec.source
        if src is None:
            return None, None
        secret = await self.kube.get("Secret", self.namespace, src.credentials.name)
        if secret is None:
            return None, f"source credentials Secret {src.credentials.name!r} does not exist"
        user = _secret_value(secret, src.credentials.user_key)
        password = _secret_value(secret, src.credentials.password_key)
        if not user or password is None:
            return None, (
                f"Secret {src.credentials.name!r} lacks key {src.credentials.user_key!r} "
                f"or {src.credentials.password_key!r}"
            )
        self.source_password = password
        self.source_ca = ""
        if src.tls_enabled:
            ca_secret = await self.kube.get("Secret", self.namespace, src.tls_ca_secret or "")
            ca = _secret_value(ca_secret, CA_KEY) if ca_secret is not None else None
            if not ca:
                return (
                    None,
                    f"source TLS CA Secret {src.tls_ca_secret!r} does not exist or lacks key {CA_KEY!r}",
                )
            self.source_ca = ca
        return (
            DesiredSource(
                src.host,
                src.port,
                user,
                allow_divergent=src.allow_divergent,
                tls_mode="verify_ca" if src.tls_enabled else "preferred",
            ),
            None,
        )

    # ---------------------------------------------------------------- act

    async def act(self, action: d.Action, spec: crd.ClusterSpec) -> None:
        ns = self.namespace
        if isinstance(action, d.ApplyObjects):
            await self._apply(action)
        elif isinstance(action, d.ScaleStatefulSet):
            await self.kube.merge_patch(
                "StatefulSet", ns, names.statefulset(self.name), {"spec": {"replicas": action.replicas}}
            )
        elif isinstance(action, d.ExpandClaims):
            for claim in action.names:
                await self.kube.merge_patch(
                    "PersistentVolumeClaim",
                    ns,
                    claim,
                    {"spec": {"resources": {"requests": {"storage": action.size}}}},
                )
        elif isinstance(action, d.DeleteClaim):
            await self.kube.delete("PersistentVolumeClaim", ns, action.name)
        elif isinstance(action, d.ForceDeletePod):
            await self.kube.delete("Pod", ns, action.name, grace_seconds=0)
        elif isinstance(action, d.DeletePod):
            await self.kube.delete("Pod", ns, action.name)
        elif isinstance(action, d.RemoveMember | d.TransferLeadership | d.SetSource):
            await self._node_action(action, spec)

    async def _apply(self, action: d.ApplyObjects) -> None:
        ns, cluster = self.namespace, self.name
        for key in action.create:
            if key.startswith("Secret/"):
                # Generated once: only ever created, never re-rendered over an existing Secret.
                inp = render.RenderInput(self.owner(), crd.parse_spec(self.body["spec"]), 1, 1)
                generated = render.secrets(
                    inp, raft_password=secrets.token_urlsafe(32), admin_token=secrets.token_urlsafe(32)
                )
                obj = next(s for s in generated if _key(s) == key)
            else:
                obj = self.rendered[key]
            try:
                await self.kube.create(obj)
            except KubeError as exc:
                if exc.status != 409:  # created meanwhile: level-based, the next pass compares
                    raise
        for key in action.update:
            obj = self.rendered[key]
            observed = await self.kube.get(obj["kind"], ns, obj["metadata"]["name"]) or {}
            patch = render.patch_for(obj, observed)
            if patch:
                await self.kube.merge_patch(obj["kind"], ns, obj["metadata"]["name"], patch)
        del cluster

    async def _node_action(self, action: d.Action, spec: crd.ClusterSpec) -> None:
        if not self.admin_token or not self.leader_admin:
            raise nodeclient.NodeUnreachable("no leader admin URL known")
        client = _client_for(self.namespace, self.name, self.admin_token)
        leader = self.leader_admin
        if isinstance(action, d.RemoveMember):
            await client.remove_member(leader, action.name)
        elif isinstance(action, d.TransferLeadership):
            await client.transfer_leader(leader, action.to)
        elif isinstance(action, d.SetSource):
            src = spec.source
            assert src is not None  # decide only sets a source the spec has
            secret = await self.kube.get("Secret", self.namespace, src.credentials.name)
            await client.set_source(
                leader,
                nodeclient.SourceRequest(
                    host=src.host,
                    port=src.port,
                    user=_secret_value(secret, src.credentials.user_key) or "",
                    password=self.source_password or "",
                    start_gtid_set=src.start_gtid_set,
                    semi_sync=src.semi_sync,
                    tls="verify_ca" if src.tls_enabled else "preferred",
                    tls_ca=self.source_ca if src.tls_enabled else "",
                ),
            )


def _node_locality(pv: Mapping[str, Any] | None) -> tuple[bool, str | None]:
    """(node-local?, node name if known) for a PersistentVolume."""
    if pv is None:
        return False, None
    spec = pv.get("spec") or {}
    terms = (((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")) or []
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == "kubernetes.io/hostname" and len(expr.get("values") or []) == 1:
                return True, str(expr["values"][0])
    # hostPath and local volumes are a directory on whichever node the pod ran on.
    return ("hostPath" in spec or "local" in spec), None


def _named_by_pod(fact: RaftFact, cluster: str, namespace: str, sts_replicas: int, pods: int) -> RaftFact:
    """Founding members know each other by Raft address until names are exchanged; name such a
    member after the pod whose stable Raft address it has, so decide can match it to its pod."""
    by_address = {
        names.raft_address(cluster, namespace, i): names.member(cluster, i)
        for i in range(max(sts_replicas, pods))
    }
    renamed = tuple(
        MemberFact(by_address.get(m.name, m.name), m.role, m.healthy)
        if names.ordinal(cluster, m.name) is None
        else m
        for m in fact.members
    )
    leader = by_address.get(fact.leader, fact.leader) if fact.leader else None
    return dataclasses.replace(fact, members=renamed, leader=leader)


def _raft_fact(doc: Mapping[str, Any]) -> RaftFact:
    src = doc.get("source") or {}
    return RaftFact(
        reporter=str(doc.get("name", "")),
        leader=doc.get("leader") or None,
        members=tuple(
            MemberFact(str(m.get("name")), str(m.get("role", "follower")), bool(m.get("healthy")))
            for m in doc.get("members") or []
        ),
        committed_gtid_set=str(doc.get("committed_gtid_set") or ""),
        source=SourceFact(
            # An unset source is reported as host "" and port 0.
            host=src.get("host") or None,
            port=src.get("port") or None,
            user=src.get("user") or None,
            tls_mode=src.get("tls_mode") or None,
            state=str(src.get("state") or "stopped"),
            error=src.get("error"),
            lag_seconds=src.get("lag_seconds"),
        ),
        connected_replicas=len(doc.get("replicas") or []),
    )


_CLIENTS: dict[tuple[str, str], tuple[str, nodeclient.NodeClient]] = {}


def _client_for(namespace: str, cluster: str, token: str) -> nodeclient.NodeClient:
    cached = _CLIENTS.get((namespace, cluster))
    if cached is None or cached[0] != token:
        cached = (token, SEAMS.node_client(token))
        _CLIENTS[(namespace, cluster)] = cached
    return cached[1]


# -------------------------------------------------------------------- kopf handlers


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's service account in a cluster, else $KUBECONFIG (read now, not at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    memo["kube"] = await Kube.connect()
    memo["lifecycle"] = Lifecycle()


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator (what kopf's defaults get wrong here, and why)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kingbus.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kingbus.io")
    if not settings.peering.mandatory:
        # No --peering flag (kopf sets the name and makes peering mandatory before the
        # startup handlers when there is one, e.g. the chart's peeringName): the chart's
        # default name rather than kopf's "default".
        settings.peering.name = DEFAULT_PEERING
    # Serve the resources present at start (the chart installs the CRD first) instead of
    # watching CRDs and namespaces: keeps the RBAC to what the reconcile itself needs.
    settings.scanning.disabled = True
    # Events are posted explicitly, typed (see reconcile_once); log lines must not become
    # Events too (kopf's default), or every logged step would be posted twice.
    settings.posting.loggers = False
    # Events are best effort.  kopf posts them one at a time and retries a refused one for
    # 54 s by default (1+1+2+3+5+8+13+21), holding up every Event queued behind it -- e.g.
    # one for a cluster whose namespace is being deleted.  Give up after 7 s instead.
    settings.posting.default_backoffs = (1, 2, 4)
    # A KingbusCluster being deleted keeps kopf's finalizer until its timer has stopped.  A
    # timer in the middle of a pass does not stop at once, and kopf looks again only after
    # cancellation_polling, 60 s by default: a delete then took a minute (seen in the tests).
    settings.background.cancellation_polling = 1.0
    # A watch request has no timeout by default: one that silently stops delivering (a
    # dropped connection the client never notices) would leave kopf with stale bodies and
    # unseen deletions.  The server ends each watch after server_timeout and kopf re-lists;
    # the client gives up a little later if the server never answered.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30


DEFAULT_PEERING = "kingbus-operator"


@dataclass
class Lifecycle:
    """The operator's shutdown state, shared by every pass.

    kopf gives each resource a *shallow copy* of the operator's memo, made when the resource
    is first seen: a flag or counter stored directly in the memo at shutdown never reaches
    the passes (seen in CI: the cleanup closed the API client under a running pass, which
    failed with a traceback).  One mutable object, stored at startup, is shared by all."""

    closing: bool = False
    in_flight: int = 0


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    # kopf may still be finishing a pass while it runs the cleanup: stop new passes, let the
    # running ones end (bounded), and only then close the clients they use.
    lifecycle = memo.get("lifecycle")
    if isinstance(lifecycle, Lifecycle):
        lifecycle.closing = True
        deadline = time.monotonic() + 15
        while lifecycle.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    kube = memo.get("kube")
    if isinstance(kube, Kube):
        await kube.close()
    for _token, node_client in list(_CLIENTS.values()):
        await node_client.close()
    _CLIENTS.clear()


@kopf.timer(crd.GROUP, crd.VERSION, crd.PLURAL, interval=RESYNC_SECONDS, initial_delay=0.0)
async def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """One pass: gather -> decide -> act -> report."""
    lifecycle: Lifecycle = memo["lifecycle"]
    if lifecycle.closing:
        return
    if body.metadata.get("deletionTimestamp"):
        # Being deleted: the garbage collector removes what it owns, kopf releases its
        # finalizer once this timer stops.  kopf does not stop it at once (a pass re-created
        # a ConfigMap of a cluster held in deletion by another finalizer, in CI).
        return
    kube: Kube = memo["kube"]
    doc = {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}
    lifecycle.in_flight += 1
    try:
        await reconcile_once(
            kube, doc, logger, post=lambda t, r, m: kopf.event(body, type=t, reason=r, message=m)
        )
    except Exception as exc:
        if not lifecycle.closing:
            raise
        # Shutdown outlived this pass (kopf orphans a timer that does not stop in time, and
        # the cleanup closes the clients after a bounded wait): nothing to report, the next
        # operator instance starts from the observed state again.
        logger.debug(f"pass interrupted by the operator's shutdown: {exc}")
    finally:
        lifecycle.in_flight -= 1


async def reconcile_once(
    kube: Kube,
    body: Mapping[str, Any],
    logger: Any,
    *,
    post: Callable[[str, str, str], None],
) -> d.Action:
    meta = body["metadata"]
    previous: Mapping[str, Any] = body.get("status") or {}
    ns, name = meta["namespace"], meta["name"]
    try:
        spec = crd.parse_spec(body["spec"])
    except crd.SpecError as exc:
        action: d.Action = d.Refuse("InvalidSpec", str(exc))
        await _report_refusal(kube, ns, name, previous, action, post)
        return action
    bootstrap = previous.get("bootstrapReplicas")
    if not isinstance(bootstrap, int):
        # Fixed once: the members the cluster is founded with (render's start.sh needs it).
        bootstrap = spec.replicas
        await kube.merge_patch(crd.KIND, ns, name, {"status": {"bootstrapReplicas": bootstrap}}, sub="status")
        previous = {**previous, "bootstrapReplicas": bootstrap}
    run = Pass(kube, body, logger)
    facts = await run.gather(spec, bootstrap)
    action = d.decide(facts)
    note = f"{action.reason}: {action.message}"
    mutating = not isinstance(action, d.Idle | d.Hold | d.Refuse)
    if mutating and not _still_wanted(await kube.get(crd.KIND, ns, name), str(meta.get("uid", ""))):
        # Deleted (or marked for deletion) while this pass was gathering: the body it started
        # from is stale, and acting on it would re-create what the garbage collector is about
        # to remove (seen in CI: a ConfigMap re-created under a cluster held by a finalizer).
        logger.debug(f"{action.reason} skipped: the cluster is being deleted")
        return d.Hold("BeingDeleted", f"{ns}/{name} is being deleted")
    if mutating:
        try:
            await run.act(action, spec)
            logger.info(note)
            post("Normal", action.reason, action.message)
        except (nodeclient.NodeError, KubeError) as exc:
            if isinstance(exc, KubeError) and _namespace_terminating(exc):
                # The namespace is being deleted with this cluster in it; its deletion reaches
                # this resource soon.  Nothing may be created there any more, an Event
                # included: kopf would retry a refused Event for about a minute, delaying
                # every Event queued after it.
                logger.debug(f"{action.reason} skipped: {exc}")
                return d.Hold("NamespaceTerminating", f"the namespace {ns} is being deleted")
            failed = d.Hold("ActionFailed", f"{action.reason} failed: {exc}", degraded=True)
            logger.warning(f"{failed.message}")
            if previous.get("lastAction") != f"{failed.reason}: {failed.message}":
                post("Warning", failed.reason, failed.message)
            action = failed
    elif _is_problem(action) and previous.get("lastAction") != note:
        logger.warning(note)
        post("Warning", action.reason, action.message)
    new_status = report.status(facts, action, previous=previous, now_iso=_iso(SEAMS.clock()))
    if not render.covers(previous, new_status):
        await kube.merge_patch(crd.KIND, ns, name, {"status": new_status}, sub="status")
    return action


def _still_wanted(current: Mapping[str, Any] | None, uid: str) -> bool:
    """Whether the cluster a pass started from still exists, is the same object (a deleted
    and re-created one has a new uid) and is not marked for deletion."""
    if current is None:
        return False
    meta = current.get("metadata") or {}
    return meta.get("uid") == uid and not meta.get("deletionTimestamp")


def _namespace_terminating(exc: KubeError) -> bool:
    # The API server's NamespaceLifecycle admission refuses creations with 403 and this text.
    return exc.status == 403 and "because it is being terminated" in str(exc)


def _is_problem(action: d.Action) -> bool:
    return isinstance(action, d.Refuse) or (isinstance(action, d.Hold) and action.degraded)


async def _report_refusal(
    kube: Kube,
    ns: str,
    name: str,
    previous: Mapping[str, Any],
    action: d.Action,
    post: Callable[[str, str, str], None],
) -> None:
    note = f"{action.reason}: {action.message}"
    if previous.get("lastAction") == note:
        return
    post("Warning", action.reason, action.message)
    await kube.merge_patch(crd.KIND, ns, name, {"status": {"lastAction": note}}, sub="status")
