"""MySQL GTIDs and GTID sets (with the 8.3+ tags): values, text form, binary form.

A GTID is `(uuid, tag, gno)`: the source's server UUID, an optional tag (MySQL 8.3+, empty
for classic GTIDs) and a sequence number `1 <= gno <= 2**63 - 2`. A GTID set maps each
*TSID* `(uuid, tag)` to a set of gnos, kept as sorted, disjoint, non-adjacent half-open
intervals `[start, end)`. Internally each TSID's intervals are one flat tuple
`(s0, e0, s1, e1, ...)`, strictly increasing, so membership is one `bisect`: a gno lies in
the set exactly when the number of boundaries `<= gno` is odd. Every operation works on
interval lists, never on individual gnos, so a set of a million contiguous GTIDs costs the
same as a set of one.

Text form, as MySQL prints it (`@@gtid_executed`, verified against MySQL 9.7):

    11111111-2222-3333-4444-555555555555:7:tg:100,2ae24d10-...-02fc00000001:1-14:tag_one:1-2

* UUIDs lower-case with hyphens, sorted; within a UUID the untagged intervals come first,
  then each tag (lower-case, sorted) followed by its intervals; `a-b` is inclusive.
* MySQL separates UUIDs with ",\\n"; `format()` uses "," alone (our text never contains a
  newline), `format(newlines=True)` gives MySQL's exact string.
* Parsing accepts what MySQL accepts: whitespace around tokens, upper case, UUIDs without
  hyphens or in braces, leading zeros, empty elements (`a,,b`, trailing comma), a UUID or
  tag with no intervals, and a reversed interval `5-3` (all of those add nothing), repeated
  or overlapping intervals (merged). Anything else raises `ValueError` naming the problem
  and the character position.

Binary form (COM_BINLOG_DUMP_GTID payload and Previous_gtids body, `Gtid_set::encode`):

    classic: u64 n_sids, then per sid: uuid[16], u64 n_intervals, n * (i64 start, i64 end)
    tagged:  u64 (1 << 56) | (n << 8) | 1, then per TSID: uuid[16], varlen tag length,
             tag bytes, u64 n_intervals, intervals as above

`end` is exclusive. The tagged form is used only when some GTID has a tag, because servers
before 8.3 reject it.

`GtidSet` is immutable and hashable. `GtidSetBuilder` is its mutable counterpart for the
hot path of recording one transaction after another: appending the next gno of a TSID is
O(1), any other insertion O(log n + intervals moved).
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import struct
from collections.abc import Iterable, Iterator, Sequence

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import Buffer
from kingbus.binlog.varints import decode_varlen_unsigned, encode_varlen_unsigned

#: Largest valid gno (MySQL's GNO_END = INT64_MAX is exclusive).
MAX_GNO = (1 << 63) - 2
MAX_TAG_LEN = 32

_TAG_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_U64 = struct.Struct("<Q")
_INTERVAL = struct.Struct("<qq")
_TAGGED_FORMAT = 1

_CHECKED_UUIDS: set[str] = set()
_CHECKED_UUIDS_MAX = 4096

Tsid = tuple[str, str]
"""`(uuid, tag)`: the key of a GTID set entry; `tag` is "" for classic GTIDs."""


def uuid_text(raw: Buffer) -> str:
    """Canonical text of a 16-byte UUID."""
    h = bytes(raw).hex()
    if len(h) != 32:
        raise MalformedEvent(f"a UUID has 16 bytes, got {len(h) // 2}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid_bytes(uuid: str) -> bytes:
    """The 16 bytes of a canonical UUID text."""
    return bytes.fromhex(uuid.replace("-", ""))


def _check_tag(tag: str) -> None:
    if tag and not _TAG_RE.fullmatch(tag):
        raise ValueError(
            f"invalid GTID tag {tag!r}: 1-{MAX_TAG_LEN} characters [a-z0-9_], not starting with a digit"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Gtid:
    """One GTID. `uuid` is canonical lower-case text; `tag` is lower-case or ""."""

    uuid: str
    gno: int
    tag: str = ""

    def __post_init__(self) -> None:
        # A source uses very few UUIDs: remember the ones already checked (hot path: one GTID
        # is made per replicated transaction).
        if self.uuid not in _CHECKED_UUIDS:
            if not _CANONICAL_UUID_RE.fullmatch(self.uuid):
                raise ValueError(f"GTID uuid must be canonical lower-case text, got {self.uuid!r}")
            if len(_CHECKED_UUIDS) >= _CHECKED_UUIDS_MAX:
                _CHECKED_UUIDS.clear()
            _CHECKED_UUIDS.add(self.uuid)
        if not 1 <= self.gno <= MAX_GNO:
            raise ValueError(f"GTID gno must be in 1..{MAX_GNO}, got {self.gno}")
        _check_tag(self.tag)

    @property
    def tsid(self) -> Tsid:
        return (self.uuid, self.tag)

    def __str__(self) -> str:
        if self.tag:
            return f"{self.uuid}:{self.tag}:{self.gno}"
        return f"{self.uuid}:{self.gno}"

    @classmethod
    def parse(cls, text: str) -> Gtid:
        """Parse `uuid:gno` or `uuid:tag:gno` (MySQL's spelling rules, see `GtidSet.parse`)."""
        gs = GtidSet.parse(text)
        items = list(gs.items())
        if len(items) != 1 or len(items[0][1]) != 2 or items[0][1][1] - items[0][1][0] != 1:
            raise ValueError(f"not a single GTID: {text!r}")
        (uuid, tag), flat = items[0]
        return cls(uuid, flat[0], tag)


# ---------------------------------------------------------------------------------------------
# Interval algebra on flat tuples (s0, e0, s1, e1, ...), strictly increasing.


def _union(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    if not b:
        return tuple(a)
    if not a:
        return tuple(b)
    out: list[int] = []
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        if j >= lb or (i < la and a[i] <= b[j]):
            s, e = a[i], a[i + 1]
            i += 2
        else:
            s, e = b[j], b[j + 1]
            j += 2
        if out and s <= out[-1]:
            if e > out[-1]:
                out[-1] = e
        else:
            out.append(s)
            out.append(e)
    return tuple(out)


def _intersection(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    out: list[int] = []
    i = j = 0
    la, lb = len(a), len(b)
    while i < la and j < lb:
        s = max(a[i], b[j])
        e = min(a[i + 1], b[j + 1])
        if s < e:
            out.append(s)
            out.append(e)
        if a[i + 1] < b[j + 1]:
            i += 2
        else:
            j += 2
    return tuple(out)


def _difference(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    if not b:
        return tuple(a)
    out: list[int] = []
    j = 0
    lb = len(b)
    for i in range(0, len(a), 2):
        s, e = a[i], a[i + 1]
        while j < lb and b[j + 1] <= s:
            j += 2
        cur = s
        k = j
        while k < lb and b[k] < e:
            if b[k] > cur:
                out.append(cur)
                out.append(b[k])
            cur = max(cur, b[k + 1])
            if cur >= e:
                break
            k += 2
        if cur < e:
            out.append(cur)
            out.append(e)
    return tuple(out)


def _insert_gno(flat: list[int], gno: int) -> bool:
    """Add `gno` to a flat interval list in place; False if it was already present."""
    n = len(flat)
    if n and flat[-1] == gno:  # the common case: the next gno of a contiguous run
        flat[-1] = gno + 1
        return True
    if n == 0 or flat[-1] < gno:
        flat.append(gno)
        flat.append(gno + 1)
        return True
    idx = bisect.bisect_right(flat, gno)
    if idx & 1:
        return False  # inside [flat[idx-1], flat[idx])
    # gno lies in the gap before flat[idx] (a start), after flat[idx-1] (an end) if idx > 0.
    joins_prev = idx > 0 and flat[idx - 1] == gno
    joins_next = idx < n and flat[idx] == gno + 1
    if joins_prev and joins_next:
        del flat[idx - 1 : idx + 1]
    elif joins_prev:
        flat[idx - 1] = gno + 1
    elif joins_next:
        flat[idx] = gno
    else:
        flat[idx:idx] = (gno, gno + 1)
    return True


def _merge_pairs(pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    """Flat canonical intervals from half-open `(start, end)` pairs in any order: O(n log n)."""
    pairs.sort()
    out: list[int] = []
    for s, e in pairs:
        if out and s <= out[-1]:
            if e > out[-1]:
                out[-1] = e
        else:
            out.append(s)
            out.append(e)
    return tuple(out)


def _sorted_map(entries: dict[Tsid, tuple[int, ...]]) -> dict[Tsid, tuple[int, ...]]:
    return {k: entries[k] for k in sorted(entries) if entries[k]}


# ---------------------------------------------------------------------------------------------


class GtidSet:
    """An immutable set of GTIDs. Construct with `parse`, `decode`, `from_gtids` or a builder."""

    __slots__ = ("_hash", "_map")

    _map: dict[Tsid, tuple[int, ...]]
    _hash: int | None

    def __init__(self) -> None:
        self._map = {}
        self._hash = None

    @classmethod
    def _wrap(cls, entries: dict[Tsid, tuple[int, ...]]) -> GtidSet:
        """Adopt an already sorted map of non-empty flat tuples (no copy)."""
        gs = cls.__new__(cls)
        gs._map = entries
        gs._hash = None
        return gs

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_gtids(cls, gtids: Iterable[Gtid]) -> GtidSet:
        builder = GtidSetBuilder()
        for g in gtids:
            builder.add(g)
        return builder.build()

    @classmethod
    def from_intervals(cls, uuid: str, intervals: Iterable[tuple[int, int]], tag: str = "") -> GtidSet:
        """A set of one TSID from inclusive `(first, last)` gno ranges (any order, may overlap)."""
        Gtid(uuid, 1, tag)  # validates uuid and tag
        pairs: list[tuple[int, int]] = []
        for first, last in intervals:
            if not 1 <= first <= last <= MAX_GNO:
                raise ValueError(f"invalid gno interval {first}-{last}")
            pairs.append((first, last + 1))
        flat = _merge_pairs(pairs)
        return cls._wrap({(uuid, tag): flat} if flat else {})

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        """Parse MySQL's text form (see the module docstring for what is accepted)."""
        return _parse_text(text)

    @classmethod
    def decode(cls, buf: Buffer) -> GtidSet:
        """Decode the binary form (classic or tagged); the whole buffer must be consumed."""
        gs, end = decode_prefix(buf, 0)
        if end != len(buf):
            raise MalformedEvent(f"{len(buf) - end} trailing bytes after an encoded GTID set")
        return gs

    # --- queries ------------------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self._map

    def __bool__(self) -> bool:
        return bool(self._map)

    def has_tags(self) -> bool:
        return any(tag for _, tag in self._map)

    def contains(self, gtid: Gtid) -> bool:
        flat = self._map.get((gtid.uuid, gtid.tag))
        return flat is not None and bool(bisect.bisect_right(flat, gtid.gno) & 1)

    def __contains__(self, gtid: object) -> bool:
        return isinstance(gtid, Gtid) and self.contains(gtid)

    def tsids(self) -> list[Tsid]:
        """The `(uuid, tag)` pairs present, sorted."""
        return list(self._map)

    def intervals(self, uuid: str, tag: str = "") -> list[tuple[int, int]]:
        """Inclusive `(first, last)` ranges of one TSID, ascending."""
        flat = self._map.get((uuid, tag), ())
        return [(flat[i], flat[i + 1] - 1) for i in range(0, len(flat), 2)]

    def items(self) -> Iterator[tuple[Tsid, tuple[int, ...]]]:
        """`((uuid, tag), flat)` in sorted order; flat is `(start, end_exclusive, ...)`."""
        return iter(self._map.items())

    def count(self) -> int:
        """Number of GTIDs in the set."""
        return sum(flat[i + 1] - flat[i] for flat in self._map.values() for i in range(0, len(flat), 2))

    def for_uuid(self, uuid: str) -> GtidSet:
        """The part of the set that belongs to one source UUID (all its tags)."""
        return GtidSet._wrap({k: v for k, v in self._map.items() if k[0] == uuid})

    # --- algebra ------------------------------------------------------------------------------

    def add(self, gtid: Gtid) -> GtidSet:
        """A new set with `gtid` added (O(intervals of its TSID))."""
        key = (gtid.uuid, gtid.tag)
        flat = list(self._map.get(key, ()))
        if not _insert_gno(flat, gtid.gno):
            return self
        entries = dict(self._map)
        entries[key] = tuple(flat)
        # Re-assigning an existing key keeps its place; a new TSID needs the keys re-sorted.
        return GtidSet._wrap(entries if key in self._map else _sorted_map(entries))

    def union(self, other: GtidSet) -> GtidSet:
        if not other._map:
            return self
        if not self._map:
            return other
        entries = dict(self._map)
        for key, flat in other._map.items():
            entries[key] = _union(entries.get(key, ()), flat)
        return GtidSet._wrap(_sorted_map(entries))

    def intersection(self, other: GtidSet) -> GtidSet:
        entries: dict[Tsid, tuple[int, ...]] = {}
        for key, flat in self._map.items():
            theirs = other._map.get(key)
            if theirs:
                common = _intersection(flat, theirs)
                if common:
                    entries[key] = common
        return GtidSet._wrap(entries)

    def difference(self, other: GtidSet) -> GtidSet:
        entries: dict[Tsid, tuple[int, ...]] = {}
        for key, flat in self._map.items():
            rest = _difference(flat, other._map.get(key, ()))
            if rest:
                entries[key] = rest
        return GtidSet._wrap(entries)

    def issubset(self, other: GtidSet) -> bool:
        for key, flat in self._map.items():
            theirs = other._map.get(key)
            if theirs is None or _difference(flat, theirs):
                return False
        return True

    def issuperset(self, other: GtidSet) -> bool:
        return other.issubset(self)

    __or__ = union
    __and__ = intersection
    __sub__ = difference
    __le__ = issubset
    __ge__ = issuperset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GtidSet) and self._map == other._map

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._map.items()))
        return self._hash

    # --- text and binary forms ----------------------------------------------------------------

    def format(self, *, newlines: bool = False) -> str:
        """MySQL's text form; `newlines=True` uses MySQL's ",\\n" separator."""
        parts: list[str] = []
        current_uuid = None
        for (uuid, tag), flat in self._map.items():
            if uuid != current_uuid:
                parts.append(("," if current_uuid is not None else "") + uuid)
                current_uuid = uuid
                if newlines and len(parts) > 1:
                    parts[-1] = ",\n" + uuid
            if tag:
                parts.append(":" + tag)
            for i in range(0, len(flat), 2):
                s, e = flat[i], flat[i + 1] - 1
                parts.append(f":{s}" if s == e else f":{s}-{e}")
        return "".join(parts)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"GtidSet.parse({self.format()!r})"

    def encode(self) -> bytes:
        """Binary form: classic when there are no tags, tagged otherwise."""
        tagged = self.has_tags()
        n = len(self._map)
        out = [_U64.pack((_TAGGED_FORMAT << 56) | (n << 8) | _TAGGED_FORMAT if tagged else n)]
        for (uuid, tag), flat in self._map.items():
            out.append(uuid_bytes(uuid))
            if tagged:
                raw_tag = tag.encode("ascii")
                out.append(encode_varlen_unsigned(len(raw_tag)) + raw_tag)
            out.append(_U64.pack(len(flat) // 2))
            out.append(struct.pack(f"<{len(flat)}q", *flat))
        return b"".join(out)


def decode_prefix(buf: Buffer, offset: int) -> tuple[GtidSet, int]:
    """Decode an encoded GTID set at `buf[offset:]`; return it and the offset after it."""
    view = memoryview(buf)
    end = len(view)
    if end - offset < 8:
        raise MalformedEvent("encoded GTID set shorter than its 8-byte count")
    (head,) = _U64.unpack_from(view, offset)
    offset += 8
    if head >> 56 == 0:
        tagged, n = False, head
    elif head >> 56 == _TAGGED_FORMAT and head & 0xFF == _TAGGED_FORMAT:
        tagged, n = True, (head >> 8) & ((1 << 48) - 1)
    else:
        raise MalformedEvent(f"unknown GTID set encoding format in header 0x{head:016x}")
    min_entry = 16 + (1 if tagged else 0) + 8
    if n * min_entry > end - offset:
        raise MalformedEvent(f"encoded GTID set claims {n} entries, only {end - offset} bytes follow")
    builder = GtidSetBuilder()
    for _ in range(n):
        if end - offset < 16:
            raise MalformedEvent("encoded GTID set truncated inside a UUID")
        uuid = uuid_text(view[offset : offset + 16])
        offset += 16
        tag = ""
        if tagged:
            tag_len, offset = decode_varlen_unsigned(view, offset)
            if tag_len > MAX_TAG_LEN or offset + tag_len > end:
                raise MalformedEvent(f"bad tag length {tag_len} in encoded GTID set")
            raw_tag = bytes(view[offset : offset + tag_len])
            offset += tag_len
            tag = raw_tag.decode("ascii", errors="replace")
            if tag and not _TAG_RE.fullmatch(tag):
                raise MalformedEvent(f"invalid tag {raw_tag!r} in encoded GTID set")
        if end - offset < 8:
            raise MalformedEvent("encoded GTID set truncated before an interval count")
        (n_intervals,) = _U64.unpack_from(view, offset)
        offset += 8
        if n_intervals * 16 > end - offset:
            raise MalformedEvent(f"encoded GTID set claims {n_intervals} intervals, buffer is shorter")
        flat = struct.unpack_from(f"<{2 * n_intervals}q", view, offset)
        offset += 16 * n_intervals
        prev_end = 1
        for i in range(0, len(flat), 2):
            s, e = flat[i], flat[i + 1]
            if not (prev_end <= s < e <= MAX_GNO + 1):
                raise MalformedEvent(f"invalid or unordered interval [{s}, {e}) for {uuid}:{tag}")
            prev_end = e
        builder.update_flat((uuid, tag), flat)
    return builder.build(), offset


# ---------------------------------------------------------------------------------------------


class GtidSetBuilder:
    """A mutable GTID set for accumulating GTIDs one at a time; `build()` snapshots it."""

    __slots__ = ("_map",)

    def __init__(self, initial: GtidSet | None = None) -> None:
        self._map: dict[Tsid, list[int]] = {}
        if initial is not None:
            for key, flat in initial.items():
                self._map[key] = list(flat)

    def add(self, gtid: Gtid) -> bool:
        """Add one GTID; False if it was already present. O(1) for the next gno of a run."""
        return self.add_gno((gtid.uuid, gtid.tag), gtid.gno)

    def add_gno(self, key: Tsid, gno: int) -> bool:
        """`add` for a GTID given as its parts (hot path: no Gtid object, no validation)."""
        flat = self._map.get(key)
        if flat is None:
            self._map[key] = [gno, gno + 1]
            return True
        return _insert_gno(flat, gno)

    def contains_gno(self, key: Tsid, gno: int) -> bool:
        flat = self._map.get(key)
        return flat is not None and bool(bisect.bisect_right(flat, gno) & 1)

    def contains(self, gtid: Gtid) -> bool:
        return self.contains_gno((gtid.uuid, gtid.tag), gtid.gno)

    def __contains__(self, gtid: object) -> bool:
        return isinstance(gtid, Gtid) and self.contains(gtid)

    def update(self, other: GtidSet) -> None:
        """Add every GTID of `other`."""
        for key, flat in other.items():
            self.update_flat(key, flat)

    def update_flat(self, key: Tsid, flat: Sequence[int]) -> None:
        if flat:
            self._map[key] = list(_union(self._map.get(key, ()), flat))

    def is_empty(self) -> bool:
        return not self._map

    def build(self) -> GtidSet:
        return GtidSet._wrap({k: tuple(self._map[k]) for k in sorted(self._map) if self._map[k]})


# ---------------------------------------------------------------------------------------------
# Text parsing. A hand-written scanner, so that errors can say exactly where the text is wrong.

_WS = " \t\r\n\f\v"
_HEX = frozenset("0123456789abcdefABCDEF")
_UUID_GROUPS = (8, 4, 4, 4, 12)


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"malformed GTID set {self.text!r}: {what} at character {self.pos}")

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def uuid(self) -> str:
        text, start = self.text, self.pos
        braced = self.peek() == "{"
        pos = start + 1 if braced else start
        groups: list[str] = []
        hyphens = 0
        for n, width in enumerate(_UUID_GROUPS):
            chunk = text[pos : pos + width]
            if len(chunk) != width or not _HEX.issuperset(chunk):
                raise self.error("expected a UUID")
            groups.append(chunk)
            pos += width
            if n < 4 and pos < len(text) and text[pos] == "-":
                pos += 1
                hyphens += 1
        if hyphens not in (0, 4):
            raise self.error("expected a UUID (hyphens in all four places or none)")
        if braced:
            if pos >= len(text) or text[pos] != "}":
                raise self.error("expected '}' closing the UUID")
            pos += 1
        self.pos = pos
        return "-".join(groups).lower()

    def number(self) -> int:
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and "0" <= text[pos] <= "9":
            pos += 1
        if pos == start:
            raise self.error("expected a number or a tag")
        value = int(text[start:pos])
        if not 1 <= value <= MAX_GNO:
            raise self.error(f"gno {text[start:pos]} out of range 1..{MAX_GNO}")
        self.pos = pos
        return value

    def tag(self) -> str:
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and (text[pos].isascii() and (text[pos].isalnum() or text[pos] == "_")):
            pos += 1
        if pos - start > MAX_TAG_LEN:
            raise self.error(f"tag longer than {MAX_TAG_LEN} characters")
        self.pos = pos
        return text[start:pos].lower()


def _parse_text(text: str) -> GtidSet:
    sc = _Scanner(text)
    pairs: dict[Tsid, list[tuple[int, int]]] = {}
    end = len(text)
    while True:
        sc.skip_ws()
        if sc.pos >= end:
            break
        if sc.peek() == ",":  # MySQL tolerates empty elements
            sc.pos += 1
            continue
        uuid = sc.uuid()
        tag = ""
        while True:
            sc.skip_ws()
            if sc.peek() != ":":
                break
            sc.pos += 1
            sc.skip_ws()
            ch = sc.peek()
            if ch.isascii() and (ch.isalpha() or ch == "_"):
                tag = sc.tag()
                continue
            first = sc.number()
            last = first
            sc.skip_ws()
            if sc.peek() == "-":
                sc.pos += 1
                sc.skip_ws()
                last = sc.number()
            if last >= first:  # MySQL silently ignores a reversed interval
                pairs.setdefault((uuid, tag), []).append((first, last + 1))
        sc.skip_ws()
        if sc.pos < end and sc.peek() != ",":
            raise sc.error("expected ',' or ':'")
    return GtidSet._wrap(_sorted_map({key: _merge_pairs(p) for key, p in pairs.items()}))
