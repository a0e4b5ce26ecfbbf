"""The Raft journal of a Kingbus node: on disk, segmented, checksummed, Raft-correct.

pysyncobj (pinned to 0.3.17) keeps its log in an object with the duck type of
`pysyncobj.journal.Journal`; `DiskJournal` is such an object, supplied through pysyncobj's
module-level `createJournal` seam by `install_journal_factory`.  This module is the public
face (theory below, the pysyncobj seam, the registry); the engine is `journal_disk`, the record
format `journal_records`, the fsync seam and small atomic files `journal_files`.

Storage
-------
The journal is a directory.  Entries live in segment files (`segment-<seq>.log`, at most
`segment_bytes` each unless a single record is larger) holding checksummed records (format in
`journal_records`).  RAM holds only

* an index of the entries currently in the journal: per entry its record offset, term and CRC
  (three flat `array`s, 20 bytes an entry), plus one small object per segment;
* the first and the last entry, because pysyncobj reads `journal[0]` and `journal[-1]` on every
  tick: those reads are O(1) and return cached tuples.

Any other read (`journal[i]`, `journal[a:b]`) reads records from disk and verifies their CRC.
A slice is an `EntriesView`, a lazy sequence: pysyncobj's leader asks for *all* entries from a
follower's next index and then keeps what fits in a batch, which must not load the whole log.

Compaction (`deleteEntriesTo`) records the new first index durably (`first-index.json`) and then
unlinks the segment files that hold only older entries; nothing is rewritten.  `clear()` unlinks
every segment.  Term and vote (`term.json`) are written atomically and synced before
`setCurrentTerm` returns.  The commit index (`commit.json`) is saved lazily (once a second and
on close) and never claims more than the journal holds: it is clamped on save and on load.

Durability
----------
With the `always` fsync policy `add()` returns only once the record is on disk (fdatasync of
the segment; a new segment file also syncs the directory).  pysyncobj's follower acknowledges
an append_entries only after all its `add` calls have returned and the leader counts its own
entry when `add` returns, so every acknowledgement is durable.  With `never`, nothing is synced.

With `group_commit` (what the node uses) `add()` only writes, and `sync()` makes everything
written so far durable with one fdatasync per segment touched.  The Raft member calls it at the
two points where Raft counts on its log (`kingbus.raft.cluster._KingbusSyncObj`): before a
follower's acknowledgement (`next_node_idx`) leaves, so a follower that received a batch of
entries in one message syncs once instead of once per entry; and at the start of every tick,
before the leader's commit computation counts its own log, so a leader syncs once for all the
commands it appended in a tick.  A leader sends entries to followers before its own sync, which
Raft allows (the leader's copy counts only once synced).  A crash loses at most records that
nobody counted on: recovery truncates the unsynced tail like any torn write.

On open every segment is walked; the last one is verified record by record and truncated at the
first torn or damaged record (a crash can only tear the tail).  A bad record in an older,
sealed segment is not a torn write: opening fails with `JournalCorruptError` rather than
silently dropping acknowledged entries.

Raft-correct truncation
-----------------------
pysyncobj's follower handles an append_entries whose `prevLogIdx` is before its last entry with
``deleteEntriesFrom(prev + 1)`` followed by ``add`` of every received entry, without comparing
terms.  A duplicated, reordered or stale message carrying a *prefix* of what the follower
already has would therefore shorten the log and drop entries the follower acknowledged (and
the leader may have committed on the strength of that acknowledgement).  Raft's rule is to
delete only from the first entry whose term conflicts, and to keep everything else.  The
journal implements that rule itself with a *tentative cut*:

``SETTLED`` (visible log == physical log)
    ``deleteEntriesFrom(c)`` with ``c < len`` -> ``TENTATIVE(cut=c, cursor=c)``; nothing on
    disk changes.  ``add(idx == last + 1)`` appends.

``TENTATIVE(cut, cursor)`` (pysyncobj sees the log up to ``cursor``; the records from
``cursor`` on are still on disk)
    ``add`` at the cursor's index with the *same term* (and the same CRC) as the stored entry is
    a no-op: the entry is kept, the cursor advances.  When the cursor reaches the physical end
    -> ``SETTLED`` (the whole tail was re-sent identically).
    ``add`` with a *different term* (a genuine conflict) physically truncates at the cursor
    (segment files after it unlinked, its own segment ftruncated, all synced), appends the new
    entry -> ``SETTLED``.  Entries before the cursor stay.
    ``add`` when the cursor is already at the physical end appends -> ``SETTLED``.
    Any other mutating call -- ``setRaftCommitIndex``, ``setCurrentTerm``,
    ``deleteEntriesFrom``, ``deleteEntriesTo``, ``clear``, ``onOneSecondTimer``, ``_destroy``
    -- first *settles*: the cut is cancelled, the untouched tail becomes visible again.

Reads (`len`, `[i]`, slices) do not settle.  That is the observable contract, and why:

* pysyncobj reads ``journal[-1]`` after the adds to clamp its commit index
  (``min(leaderCommit, lastLogIndex)``).  Raft requires ``min(leaderCommit, index of last new
  entry)``: the kept tail past the message's entries has not been checked against this leader
  and may hold stale entries of an older term, so it must not be counted.  During the message
  the visible log ends exactly at the last entry of the message, as with a stock journal.
* Every append_entries handler of pysyncobj 0.3.17 ends with ``setRaftCommitIndex``; there the
  kept tail becomes visible again.  From then on `len` and ``[-1]`` include it, so the
  follower's vote (``last_log_index``/``last_log_term``) and its next reply reflect everything
  it acknowledged, as Raft requires.  ``setCurrentTerm`` (the first thing done on a vote
  request or an election) also settles, as a second guard.
* Physically nothing is ever deleted unless a conflict proves it wrong, and a crash in the
  tentative state simply reopens the whole (durable) log: the same as settling.

Counters (attributes, and `stats()`): ``tentative_cuts``, ``kept_tail_events`` (cuts that
ended with at least one entry kept), ``kept_entries`` (entries a stock journal would have
deleted), ``physical_truncations``, ``truncated_entries`` and ``identity_mismatches`` (same
index and term but different bytes: a broken Raft invariant, handled as a conflict and logged).

A known interaction: with ``dynamicMembershipChange`` pysyncobj reverts the membership changes
of the entries after ``prevLogIdx`` before the cut and re-applies those of the message.  A
membership entry in a kept tail past the message is thus reverted while it stays in the log
(pysyncobj would re-apply it only once it is applied as committed).  `on_kept_tail`, when set,
is called with the entries a settle makes visible again; `attach_to_syncobj` sets it to re-apply
their membership changes at once, so the configuration always matches the log as Raft's
single-server membership rule requires.

Threads: pysyncobj calls the journal from its tick thread only; a re-entrant lock makes the
counters and `stats()` safe to read from other threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from kingbus.raft.journal_disk import (
    COMMIT_FILE,
    DEFAULT_SEGMENT_BYTES,
    FIRST_INDEX_FILE,
    TERM_FILE,
    DiskJournal,
    EntriesView,
    Entry,
    JournalCorruptError,
    JournalError,
    JournalOptions,
    StaleViewError,
)

__all__ = [
    "COMMIT_FILE",
    "DEFAULT_SEGMENT_BYTES",
    "FIRST_INDEX_FILE",
    "SUPPORTED_PYSYNCOBJ_VERSION",
    "TERM_FILE",
    "DiskJournal",
    "EntriesView",
    "Entry",
    "JournalCorruptError",
    "JournalError",
    "JournalOptions",
    "PysyncobjVersionError",
    "StaleViewError",
    "attach_to_syncobj",
    "check_pysyncobj_version",
    "install_journal_factory",
    "journal_factory",
    "journal_for",
    "open_journal",
    "uninstall_journal_factory",
]

log = logging.getLogger(__name__)

SUPPORTED_PYSYNCOBJ_VERSION = "0.3.17"


class PysyncobjVersionError(RuntimeError):
    """The installed pysyncobj is not the version whose internals this module relies on."""


# ---------------------------------------------------------------------- pysyncobj integration
_registry_lock = threading.Lock()
_registry: dict[str, DiskJournal] = {}
_original_create_journal: Any = None


def _registry_key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def check_pysyncobj_version() -> None:
    """Raise `PysyncobjVersionError` unless pysyncobj is the version this module was built on."""
    import pysyncobj.syncobj
    import pysyncobj.version

    found = getattr(pysyncobj.version, "VERSION", None)
    if found != SUPPORTED_PYSYNCOBJ_VERSION:
        raise PysyncobjVersionError(
            f"kingbus.raft.journal relies on pysyncobj {SUPPORTED_PYSYNCOBJ_VERSION} internals "
            f"(the createJournal seam and its follower's call sequence); found {found!r}"
        )
    if not callable(getattr(pysyncobj.syncobj, "createJournal", None)):
        raise PysyncobjVersionError("pysyncobj.syncobj.createJournal is missing")


def open_journal(path: str | os.PathLike[str], options: JournalOptions | None = None) -> DiskJournal:
    """Open the journal at `path` and register it so `journal_for(path)` finds it."""
    key = _registry_key(path)
    with _registry_lock:
        existing = _registry.get(key)
        if existing is not None:
            raise JournalError(f"journal {key} is already open")
        journal = DiskJournal(path, options)
        journal.on_destroy = _unregister
        _registry[key] = journal
        return journal


def _unregister(journal: DiskJournal) -> None:
    with _registry_lock:
        key = _registry_key(journal.path)
        if _registry.get(key) is journal:
            del _registry[key]


def journal_for(path: str | os.PathLike[str]) -> DiskJournal:
    """The open journal of a path (as created by the installed factory); KeyError if none."""
    with _registry_lock:
        return _registry[_registry_key(path)]


def install_journal_factory(options: JournalOptions | None = None) -> None:
    """Make every `SyncObj` created from now on use a `DiskJournal` with `options`.

    Replaces ``pysyncobj.syncobj.createJournal``, the name `SyncObj.__init__` calls with
    `conf.journalFile`.  Calling it again replaces the options for later SyncObjs.  A
    `journalFile` is required: the node never runs on an in-memory log.
    """
    global _original_create_journal
    check_pysyncobj_version()
    import pysyncobj.syncobj

    chosen = options or JournalOptions()

    def create_journal(journalFile: str | None = None) -> DiskJournal:
        if journalFile is None:
            raise JournalError("kingbus needs SyncObjConf(journalFile=...): no in-memory Raft log")
        return open_journal(journalFile, chosen)

    with _registry_lock:
        if _original_create_journal is None:
            _original_create_journal = pysyncobj.syncobj.createJournal
        pysyncobj.syncobj.createJournal = create_journal


def uninstall_journal_factory() -> None:
    """Give pysyncobj its own `createJournal` back."""
    global _original_create_journal
    import pysyncobj.syncobj

    with _registry_lock:
        if _original_create_journal is not None:
            pysyncobj.syncobj.createJournal = _original_create_journal
            _original_create_journal = None


def attach_to_syncobj(syncobj: Any) -> DiskJournal:
    """The `DiskJournal` of a constructed `SyncObj`, wired to re-apply kept membership changes.

    With ``dynamicMembershipChange`` the follower reverts the membership entries it is about to
    cut; for the ones the journal keeps (see the module docstring) the listener applies them
    again, in log order, through pysyncobj's own ``__doChangeCluster`` (idempotent: adding a
    present node or removing an absent one does nothing).
    """
    log_ = syncobj._SyncObj__raftLog
    if not isinstance(log_, DiskJournal):
        raise JournalError(f"this SyncObj's journal is a {type(log_).__name__}, not a DiskJournal")
    if syncobj.conf.dynamicMembershipChange:
        parse = syncobj._SyncObj__parseChangeClusterRequest
        change = syncobj._SyncObj__doChangeCluster

        def reapply_membership(entries: Sequence[Entry]) -> None:
            for command, _idx, _term in entries:
                request = parse(command) if command else None
                if request is not None:
                    log.info("journal %s: re-applying kept membership change %r", log_.path, request[:2])
                    change(request)

        log_.on_kept_tail = reapply_membership
    return log_


@contextlib.contextmanager
def journal_factory(options: JournalOptions | None = None) -> Iterator[None]:
    """`install_journal_factory` for the duration of a `with` block."""
    install_journal_factory(options)
    try:
        yield
    finally:
        uninstall_journal_factory()
