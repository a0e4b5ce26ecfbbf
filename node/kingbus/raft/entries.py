"""Raft entry payloads: a small, versioned binary codec (pure).

Every Raft command Kingbus proposes is one of the records below, encoded by this module into
bytes and handed to pysyncobj as they are.  Our own codec, not pickle, so that what sits in
the journal is a documented format that cannot execute anything when read, and so that its
size is known before it is proposed (entries are bounded).

pysyncobj pickles commands with protocol 2, which stores `bytes` as latin-1 text re-encoded
in UTF-8 (1.5 times larger, slow); `kingbus.raft.transport` switches it to protocol 5, where
bytes stay raw.  Journals written before that hold the payload as an integer and its length
(`unpack_payload` reads them).

Records
-------
* ``TxnBatch``: whole transactions of one syncer session, in source order.
* ``TxnChunk``: one piece of a transaction too large for one entry.
* ``Barrier``: proposed by a new syncer session before it reads the committed GTID set;
  when it is applied, everything committed before it has been applied too.
* ``SourceConfig``: the replicated source settings (the password is encrypted with a key
  derived from the cluster's Raft password, never stored in clear).
* ``MemberInfo``: the replicated member directory (name -> Raft address, admin URL).

A syncer *session* is ``(term, counter)``; sessions only grow.  The state machine accepts a
batch or chunk only as the next ``seq`` of the current session, or as ``seq == 0`` of a newer
session; anything else is a leftover of a superseded session and is ignored.  That keeps the
stored sequence exactly the source's order even when proposals of an old leader are still
being committed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

FORMAT = 1

_KIND_BATCH = 1
_KIND_CHUNK = 2
_KIND_BARRIER = 3
_KIND_SOURCE = 4
_KIND_MEMBER = 5

_HEAD = struct.Struct("<BB")  # format, kind
_SESSION = struct.Struct("<QIQ")  # term, counter, seq
_TXN_META = struct.Struct("<QII")  # source end pos, timestamp, data length
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class EntryError(ValueError):
    """An entry payload that does not decode: never applied, always reported."""


@dataclass(frozen=True, slots=True, order=True)
class Session:
    term: int
    counter: int


class Txn(NamedTuple):
    """One whole transaction.  A NamedTuple, not a dataclass: one is built per transaction
    on every member's apply path, and a frozen dataclass costs several times more to create."""

    gtid: str
    source_end_pos: int
    timestamp: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TxnBatch:
    session: Session
    seq: int
    fde: bytes
    source_file: str
    txns: tuple[Txn, ...]


@dataclass(frozen=True, slots=True)
class TxnChunk:
    session: Session
    seq: int
    fde: bytes
    source_file: str
    first: bool
    last: bool
    txn: Txn  # `data` is this chunk's piece; the other fields describe the whole transaction


@dataclass(frozen=True, slots=True)
class Barrier:
    session: Session


@dataclass(frozen=True, slots=True)
class SourceConfig:
    host: str
    port: int
    user: str
    password_enc: str  # Fernet token; see kingbus.raft.secrets
    start_gtid_set: str
    semi_sync: bool
    running: bool
    # TLS toward the source, as a MySQL replica's SOURCE_SSL: "preferred" (encrypt when the
    # source offers it), "required" (refuse a source that does not), "verify_ca" (required,
    # and the source's certificate must be signed by `tls_ca`, PEM), "disabled".
    tls: str = "preferred"
    tls_ca: str = ""
    # From a member's configuration file: applied only if the cluster has no source yet when
    # the entry is applied (decided in log order, so a member that restarted and has not yet
    # applied a later PUT /source cannot bring the file's older settings back).
    initial: bool = False

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user}


@dataclass(frozen=True, slots=True)
class MemberInfo:
    name: str
    raft: str
    admin: str
    removed: bool = False


Entry = TxnBatch | TxnChunk | Barrier | SourceConfig | MemberInfo

SOURCE_TLS_MODES = ("preferred", "required", "verify_ca", "disabled")

# Fixed overhead of a batch entry plus per-transaction overhead, used by the batcher to stay
# below the configured entry size without encoding twice.
BATCH_OVERHEAD = 512
TXN_OVERHEAD = _TXN_META.size + _U16.size + 80


def _str(buf: bytearray, text: str) -> None:
    raw = text.encode("utf-8")
    buf += _U16.pack(len(raw))
    buf += raw


def _blob(buf: bytearray, data: bytes) -> None:
    buf += _U32.pack(len(data))
    buf += data


def encode(entry: Entry) -> bytes:
    buf = bytearray()
    if isinstance(entry, TxnBatch):
        buf += _HEAD.pack(FORMAT, _KIND_BATCH)
        buf += _SESSION.pack(entry.session.term, entry.session.counter, entry.seq)
        _blob(buf, entry.fde)
        _str(buf, entry.source_file)
        buf += _U32.pack(len(entry.txns))
        # Written out, not through `_str`: one iteration per transaction (hot path).
        pack_u16, pack_meta = _U16.pack, _TXN_META.pack
        for gtid, source_end_pos, timestamp, data in entry.txns:
            raw = gtid.encode()
            buf += pack_u16(len(raw))
            buf += raw
            buf += pack_meta(source_end_pos, timestamp, len(data))
            buf += data
    elif isinstance(entry, TxnChunk):
        buf += _HEAD.pack(FORMAT, _KIND_CHUNK)
        buf += _SESSION.pack(entry.session.term, entry.session.counter, entry.seq)
        _blob(buf, entry.fde)
        _str(buf, entry.source_file)
        buf.append((1 if entry.first else 0) | (2 if entry.last else 0))
        _str(buf, entry.txn.gtid)
        buf += _TXN_META.pack(entry.txn.source_end_pos, entry.txn.timestamp, len(entry.txn.data))
        buf += entry.txn.data
    elif isinstance(entry, Barrier):
        buf += _HEAD.pack(FORMAT, _KIND_BARRIER)
        buf += _SESSION.pack(entry.session.term, entry.session.counter, 0)
    elif isinstance(entry, SourceConfig):
        buf += _HEAD.pack(FORMAT, _KIND_SOURCE)
        buf += json.dumps(
            {
                "host": entry.host,
                "port": entry.port,
                "user": entry.user,
                "password_enc": entry.password_enc,
                "start_gtid_set": entry.start_gtid_set,
                "semi_sync": entry.semi_sync,
                "running": entry.running,
                "tls": entry.tls,
                "tls_ca": entry.tls_ca,
                "initial": entry.initial,
            }
        ).encode()
    elif isinstance(entry, MemberInfo):
        buf += _HEAD.pack(FORMAT, _KIND_MEMBER)
        buf += json.dumps(
            {"name": entry.name, "raft": entry.raft, "admin": entry.admin, "removed": entry.removed}
        ).encode()
    else:  # pragma: no cover - the type union is closed
        raise TypeError(f"not an entry: {entry!r}")
    return bytes(buf)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise EntryError(f"entry truncated: need {n} bytes at {self.pos} of {len(self.buf)}")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        return st.unpack(self.take(st.size))

    def string(self) -> str:
        (n,) = self.unpack(_U16)
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EntryError(f"bad text in entry: {exc}") from None

    def blob(self) -> bytes:
        (n,) = self.unpack(_U32)
        return self.take(n)

    def txn(self) -> Txn:
        gtid = self.string()
        end_pos, ts, n = self.unpack(_TXN_META)
        return Txn(gtid, end_pos, ts, self.take(n))

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise EntryError(f"{len(self.buf) - self.pos} trailing bytes in entry")


_new_txn = tuple.__new__  # Txn(...) through NamedTuple's __new__ costs twice as much


def _decode_txns(buf: bytes, pos: int, count: int) -> tuple[tuple[Txn, ...], int]:
    """`count` transactions of a batch from `pos`: what `_Reader.txn` does, written out
    (every member decodes every transaction: the followers' hot path)."""
    out: list[Txn] = []
    append = out.append
    u16, meta = _U16.unpack_from, _TXN_META.unpack_from
    meta_size = _TXN_META.size
    end = len(buf)
    try:
        for _ in range(count):
            (n,) = u16(buf, pos)
            pos += 2
            gtid = buf[pos : pos + n].decode("utf-8")
            pos += n
            source_end_pos, timestamp, size = meta(buf, pos)
            pos += meta_size
            data = buf[pos : pos + size]
            pos += size
            if pos > end:
                break
            append(_new_txn(Txn, (gtid, source_end_pos, timestamp, data)))
    except struct.error:
        pos = end + 1
    except UnicodeDecodeError as exc:
        raise EntryError(f"bad text in entry: {exc}") from None
    if pos > end:
        raise EntryError(f"entry truncated: {count} transactions do not fit in {end} bytes")
    return tuple(out), pos


def decode(payload: bytes) -> Entry:
    r = _Reader(payload)
    fmt, kind = r.unpack(_HEAD)
    if fmt != FORMAT:
        raise EntryError(f"entry format {fmt} is not supported (this node reads format {FORMAT})")
    entry: Entry
    if kind in (_KIND_BATCH, _KIND_CHUNK, _KIND_BARRIER):
        term, counter, seq = r.unpack(_SESSION)
        session = Session(term, counter)
        if kind == _KIND_BARRIER:
            entry = Barrier(session)
        else:
            fde = r.blob()
            source_file = r.string()
            if kind == _KIND_BATCH:
                (count,) = r.unpack(_U32)
                txns, r.pos = _decode_txns(payload, r.pos, count)
                entry = TxnBatch(session, seq, fde, source_file, txns)
            else:
                flags = r.take(1)[0]
                entry = TxnChunk(session, seq, fde, source_file, bool(flags & 1), bool(flags & 2), r.txn())
        r.done()
        return entry
    body = r.take(len(payload) - r.pos)
    try:
        raw = json.loads(body)
        if kind == _KIND_SOURCE:
            return SourceConfig(
                host=str(raw["host"]),
                port=int(raw["port"]),
                user=str(raw["user"]),
                password_enc=str(raw["password_enc"]),
                start_gtid_set=str(raw["start_gtid_set"]),
                semi_sync=bool(raw["semi_sync"]),
                running=bool(raw["running"]),
                # Entries written before the setting existed meant the default.
                tls=str(raw.get("tls", "preferred")),
                tls_ca=str(raw.get("tls_ca", "")),
                initial=bool(raw.get("initial", False)),
            )
        if kind == _KIND_MEMBER:
            return MemberInfo(str(raw["name"]), str(raw["raft"]), str(raw["admin"]), bool(raw["removed"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise EntryError(f"bad {kind} entry: {exc}") from None
    raise EntryError(f"unknown entry kind {kind}")


def session_key(payload: bytes) -> tuple[Session, int] | None:
    """`(session, seq)` of a batch or chunk entry from its header alone, else None."""
    if len(payload) < _HEAD.size + _SESSION.size or payload[0] != FORMAT:
        return None
    if payload[1] not in (_KIND_BATCH, _KIND_CHUNK):
        return None
    term, counter, seq = _SESSION.unpack_from(payload, _HEAD.size)
    return Session(term, counter), seq


def pack_payload(payload: bytes) -> tuple[int, int]:
    """bytes -> (int, length): how payloads were proposed before pickle protocol 5 (kept for
    tests of journals written that way)."""
    return int.from_bytes(payload, "little"), len(payload)


def unpack_payload(value: int | bytes, length: int | None = None) -> bytes:
    """A proposed payload as applied: bytes as they are, or an older journal's (int, length)."""
    if isinstance(value, int):
        if length is None:
            raise EntryError("an integer payload needs its length")
        return value.to_bytes(length, "little")
    return value
