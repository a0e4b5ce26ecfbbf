"""GTID sets: MySQL's text form, the binary form, the algebra (against a naive model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.gtids import MAX_GNO, Gtid, GtidSet, GtidSetBuilder, decode_prefix
from tests.unit.binlog.binlog_samples import OTHER_UUID, SOURCE_UUID

A = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
B = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"

# Input -> what MySQL 9.7.4 returned for SELECT GTID_SUBTRACT(input, '') (with ",\n" -> ",").
MYSQL_NORMALIZED = [
    (f"{A}:3-3", f"{A}:3"),
    (
        f"AAAAAAAA-aaaa-aaaa-aaaa-aaaaaaaaaaaa:1-3:5:4, {'b' * 32}:Foo:7:bar:1-2:1",
        f"{A}:1-5,{B}:bar:1-2:foo:7",
    ),
    (f" {A} : 1 - 3 ,{A}:4", f"{A}:1-4"),
    (f"{A}:5-3", ""),
    (f"{A}:tag", ""),
    (A, ""),
    (f"{A}:1,,{A}:3", f"{A}:1:3"),
    (f"{A}:{MAX_GNO}", f"{A}:{MAX_GNO}"),
    (f"{{{A}}}:1", f"{A}:1"),
    (f"{A}:_x:1", f"{A}:_x:1"),
    (f"{A}:{'abcdefghij' * 3}ab:1", f"{A}:{'abcdefghij' * 3}ab:1"),
    (",", ""),
    (f"{A}:1,", f"{A}:1"),
    (f"{A}:t1:1:t1:2", f"{A}:t1:1-2"),
    (f"{A}:01-02", f"{A}:1-2"),
    # @@gtid_executed of the server that wrote the fixtures:
    (
        f"{OTHER_UUID}:7:tg:100,\n{SOURCE_UUID}:1-14:tag_one:1-2:zz:1",
        f"{OTHER_UUID}:7:tg:100,{SOURCE_UUID}:1-14:tag_one:1-2:zz:1",
    ),
]


@pytest.mark.parametrize(("text", "normalized"), MYSQL_NORMALIZED)
def test_text_form_matches_mysql(text: str, normalized: str) -> None:
    gs = GtidSet.parse(text)
    assert gs.format() == normalized
    assert GtidSet.parse(normalized) == gs


def test_newline_separator_like_mysql() -> None:
    gs = GtidSet.parse(f"{SOURCE_UUID}:1-14:tag_one:1-2:zz:1,{OTHER_UUID}:7:tg:100")
    assert gs.format(newlines=True) == f"{OTHER_UUID}:7:tg:100,\n{SOURCE_UUID}:1-14:tag_one:1-2:zz:1"
    assert "\n" not in str(gs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{A}:0", "out of range"),  # MySQL: "Interval start out of range"
        (f"{A}:{MAX_GNO + 1}", "out of range"),
        (f"{A}:1:tag:2:", "expected a number or a tag"),
        (f"{A}:1x:1", "expected ',' or ':'"),
        (f"{A}:{'abcdefghij' * 3}abc:1", "tag longer than 32"),
        (f"{A}::1", "expected a number or a tag"),
        (f"{A}:+1", "expected a number or a tag"),
        ("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa:1", "expected a UUID"),
        ("aaaaaaaa-aaaaaaaa-aaaa-aaaaaaaaaaaa:1", "hyphens"),
        (f"{{{A}:1", "expected '}'"),
        ("hello", "expected a UUID"),
        (f"{A}:1-", "expected a number"),
    ],
)
def test_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        GtidSet.parse(text)
    assert "at character" in str(info.value)


def test_gtid_value() -> None:
    g = Gtid.parse(f"{A.upper()}:Tag:5")
    assert g == Gtid(A, 5, "tag") and str(g) == f"{A}:tag:5"
    assert str(Gtid(A, 7)) == f"{A}:7"
    for uuid, gno, tag in ((A, 0, ""), (A.upper(), 1, ""), (A, 1, "9x"), (A, MAX_GNO + 1, "")):
        with pytest.raises(ValueError):
            Gtid(uuid, gno, tag)
    with pytest.raises(ValueError, match="single GTID"):
        Gtid.parse(f"{A}:1-2")


def test_queries() -> None:
    gs = GtidSet.parse(f"{A}:1-5:7:x:3,{B}:2")
    assert gs.contains(Gtid(A, 5)) and Gtid(A, 7) in gs and Gtid(A, 3, "x") in gs
    assert not gs.contains(Gtid(A, 6)) and Gtid(A, 3, "y") not in gs and "nope" not in gs
    assert gs.count() == 8 and gs.intervals(A) == [(1, 5), (7, 7)] and gs.intervals(A, "z") == []
    assert gs.tsids() == [(A, ""), (A, "x"), (B, "")]
    assert gs.for_uuid(A) == GtidSet.parse(f"{A}:1-5:7:x:3")
    assert gs.has_tags() and not gs.for_uuid(B).has_tags()
    assert GtidSet().is_empty() and not GtidSet() and not gs.is_empty()
    assert GtidSet.from_intervals(A, [(7, 7), (1, 5), (2, 3)]) == gs.for_uuid(A).difference(
        GtidSet.parse(f"{A}:x:3")
    )
    assert repr(gs) == f"GtidSet.parse('{gs}')" and len({gs, GtidSet.parse(str(gs))}) == 1


def test_encode_matches_mysql_previous_gtids() -> None:
    # Body of the Previous_gtids event MySQL 9.7 wrote at the start of mysql97-crc32.000002.
    gs = GtidSet.parse(f"{OTHER_UUID}:7:tg:100,{SOURCE_UUID}:1-14:tag_one:1-2:zz:1")
    expected = bytes.fromhex(
        "0105000000000001"  # (1 << 56) | (5 TSIDs << 8) | 1: tagged format
        + "11111111222233334444555555555555" + "00"
        + "0100000000000000" + "0700000000000000" + "0800000000000000"
        + "11111111222233334444555555555555" + "04" + "7467"  # tag "tg": varlen length 2 << 1
        + "0100000000000000" + "6400000000000000" + "6500000000000000"
        + "2ae24d10e78611f1927502fc00000001" + "00"
        + "0100000000000000" + "0100000000000000" + "0f00000000000000"
        + "2ae24d10e78611f1927502fc00000001" + "0e" + "7461675f6f6e65"  # "tag_one"
        + "0100000000000000" + "0100000000000000" + "0300000000000000"
        + "2ae24d10e78611f1927502fc00000001" + "04" + "7a7a"  # "zz"
        + "0100000000000000" + "0100000000000000" + "0200000000000000"
    )  # fmt: skip
    assert gs.encode() == expected
    assert GtidSet.decode(expected) == gs


def test_classic_encoding() -> None:
    gs = GtidSet.parse(f"{A}:1-3:5")
    expected = (
        (1).to_bytes(8, "little")  # n_sids, classic (top byte 0)
        + bytes.fromhex("aa" * 16)
        + (2).to_bytes(8, "little")  # n_intervals
        + (1).to_bytes(8, "little") + (4).to_bytes(8, "little")  # [1, 4)
        + (5).to_bytes(8, "little") + (6).to_bytes(8, "little")  # [5, 6)
    )  # fmt: skip
    assert gs.encode() == expected and GtidSet.decode(expected) == gs
    assert GtidSet().encode() == bytes(8) and GtidSet.decode(bytes(8)).is_empty()
    assert decode_prefix(b"xx" + expected + b"tail", 2) == (gs, 2 + len(expected))


def u64(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in values)


SID = b"\xaa" * 16


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x00", "shorter than"),
        (u64(5), "claims 5 entries"),
        (u64(1) + SID + u64(1), "claims 1 intervals"),
        (u64(1) + SID + u64(1, 0, 1), "invalid"),  # gno 0
        (u64(1) + SID + u64(1, 3, 3), "invalid"),  # empty interval
        (u64(1) + SID + u64(2, 5, 7, 1, 2), "unordered"),
        (u64(1) + SID + u64(1, 1, MAX_GNO + 2), "invalid"),  # end beyond GNO_END
        (u64((2 << 56) | (1 << 8) | 2) + SID + b"\x00" + u64(0), "unknown GTID set encoding"),
        (u64((1 << 56) | (1 << 8) | 1) + SID + b"\x42" + b"a" * 33 + u64(0), "bad tag length"),
        (u64((1 << 56) | (1 << 8) | 1) + SID + b"\x04" + b"9a" + u64(0), "invalid tag"),
        (u64((1 << 56) | (1 << 8) | 1) + SID, "claims 1 entries"),
        (u64(2) + SID + u64(1, 1, 2) + SID[:10], "truncated inside a UUID"),
        (u64(2) + SID + u64(1, 1, 2) + SID + b"\x01" * 7, "truncated before an interval count"),
        (u64(0) + b"x", "trailing"),
    ],
)
def test_decode_malformed(blob: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        GtidSet.decode(blob)


# --- property tests against a naive model: a Python set of (uuid, tag, gno) -----------------------

UUIDS = [A, B, "01234567-89ab-cdef-0123-456789abcdef"]
TAGS = ["", "t", "_x9"]
gtid_strategy = st.builds(Gtid, st.sampled_from(UUIDS), st.integers(1, 40), st.sampled_from(TAGS))
gtid_lists = st.lists(gtid_strategy, max_size=60)


def model(gs: GtidSet) -> set[tuple[str, str, int]]:
    out: set[tuple[str, str, int]] = set()
    for (uuid, tag), flat in gs.items():
        for i in range(0, len(flat), 2):
            out.update((uuid, tag, g) for g in range(flat[i], flat[i + 1]))
    return out


def naive(gtids: list[Gtid]) -> set[tuple[str, str, int]]:
    return {(g.uuid, g.tag, g.gno) for g in gtids}


def assert_canonical(gs: GtidSet) -> None:
    keys = [k for k, _ in gs.items()]
    assert keys == sorted(keys)
    for _, flat in gs.items():
        assert flat and len(flat) % 2 == 0
        assert all(flat[i] < flat[i + 1] for i in range(len(flat) - 1))  # disjoint AND non-adjacent


@given(gtid_lists, gtid_lists)
def test_algebra_matches_model(xs: list[Gtid], ys: list[Gtid]) -> None:
    a, b = GtidSet.from_gtids(xs), GtidSet.from_gtids(ys)
    ma, mb = naive(xs), naive(ys)
    for result, expected in ((a | b, ma | mb), (a & b, ma & mb), (a - b, ma - mb), (b - a, mb - ma)):
        assert_canonical(result)
        assert model(result) == expected
    assert (a <= b) == (ma <= mb) and (a >= b) == (ma >= mb)
    assert (a == b) == (ma == mb)
    assert a.count() == len(ma)
    for g in ys:
        assert a.contains(g) == ((g.uuid, g.tag, g.gno) in ma)


@given(gtid_lists)
def test_text_and_binary_round_trip(xs: list[Gtid]) -> None:
    gs = GtidSet.from_gtids(xs)
    assert GtidSet.parse(gs.format()) == gs
    assert GtidSet.parse(gs.format(newlines=True).upper()) == gs
    assert GtidSet.decode(gs.encode()) == gs
    assert (gs.encode()[7] == 1) == gs.has_tags()  # tagged format only when needed


@given(gtid_lists, gtid_lists)
def test_add_and_builder_match_model(xs: list[Gtid], ys: list[Gtid]) -> None:
    gs = GtidSet.from_gtids(xs)
    builder = GtidSetBuilder(gs)
    expected = naive(xs)
    for g in ys:
        before = gs
        gs = gs.add(g)
        assert_canonical(gs)
        assert builder.add(g) == ((g.uuid, g.tag, g.gno) not in expected)
        assert g in builder and builder.contains(g)
        expected.add((g.uuid, g.tag, g.gno))
        assert model(before) <= model(gs)
    assert model(gs) == expected == model(builder.build())


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 5)), max_size=10))
def test_parse_intervals_match_model(ranges: list[tuple[int, int]]) -> None:
    text = A + "".join(f":{s}-{s + n}" for s, n in ranges)
    assert model(GtidSet.parse(text)) == {(A, "", g) for s, n in ranges for g in range(s, s + n + 1)}


@settings(max_examples=200)
@given(st.text(alphabet="ab-:0123456789,xyz_ {}\n", max_size=60))
def test_parse_never_crashes_except_value_error(text: str) -> None:
    try:
        gs = GtidSet.parse(text)
    except ValueError:
        return
    assert GtidSet.parse(gs.format()) == gs


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_decode_fuzz(blob: bytes) -> None:
    try:
        gs = GtidSet.decode(blob)
    except MalformedEvent:
        return
    assert GtidSet.decode(gs.encode()) == gs


# --- large sets: work is proportional to intervals, not GTIDs (sizes that would time out if it
# were not; speed itself is measured by bench/, never asserted here) --------------------------


def test_large_contiguous_sets() -> None:
    big = GtidSet.parse(f"{A}:1-1000000")
    for gno in range(1_000_001, 1_010_001):
        big = big.add(Gtid(A, gno))
    assert big.intervals(A) == [(1, 1_010_000)]
    builder = GtidSetBuilder(big)
    for gno in range(1_010_001, 1_110_001):
        builder.add(Gtid(A, gno))
    assert builder.build().intervals(A) == [(1, 1_110_000)]
    assert big.add(Gtid(A, 5)) is big  # already present: unchanged


def test_many_intervals_operations() -> None:
    odd = GtidSet.from_intervals(A, [(g, g) for g in range(1, 20001, 2)])
    even = GtidSet.from_intervals(A, [(g, g) for g in range(2, 20001, 2)])
    assert (odd | even).intervals(A) == [(1, 20000)]
    assert (odd & even).is_empty() and odd - even == odd
    assert odd.add(Gtid(A, 2)).intervals(A)[:2] == [(1, 3), (5, 5)]


def test_parsing_many_intervals() -> None:
    text = A + "".join(f":{g}" for g in range(199_999, 0, -2))  # 100k single GTIDs, descending
    gs = GtidSet.parse(text)
    assert len(gs.intervals(A)) == 100_000 and gs.intervals(A)[0] == (1, 1)
    assert GtidSet.decode(gs.encode()) == gs
