"""Pickling into pieces and the queue of pieces (kingbus.raft.outqueue)."""

from __future__ import annotations

import errno
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.raft.outqueue import DIRECT_BYTES, MAX_BUFFERS, OutputQueue, pickle_pieces


def test_pieces_join_to_what_pickle_dumps_gives() -> None:
    big = bytes(range(256)) * 1024
    message = {"type": 3, "entries": [(big, 1, 2), (b"small", 2, 2), (big + b"!", 3, 2)], "text": "é"}
    pieces = pickle_pieces(message)
    assert b"".join(pieces) == pickle.dumps(message, protocol=5)
    assert pickle.loads(b"".join(pieces)) == message


def test_large_payloads_are_not_copied_and_small_pieces_are_merged() -> None:
    first, second = b"x" * DIRECT_BYTES, b"y" * (DIRECT_BYTES + 1)
    pieces = pickle_pieces([first, 1, b"y", second])
    assert any(piece is first for piece in pieces) and any(piece is second for piece in pieces)
    assert len(pieces) == 5  # merged framing before, between and after the two payloads


def test_a_message_without_large_payloads_is_one_piece() -> None:
    assert len(pickle_pieces({"type": 1, "term": 5, "entries": [(b"z" * 100, 1, 1)]})) == 1


class Sock:
    def __init__(self, takes: list[int]) -> None:
        self.takes = takes  # bytes accepted by each call, in order (then everything)
        self.calls: list[int] = []  # buffers per call
        self.out = bytearray()

    def sendmsg(self, buffers: list[memoryview]) -> int:
        self.calls.append(len(buffers))
        data = b"".join(buffers)
        n = min(len(data), self.takes.pop(0)) if self.takes else len(data)
        if n == -1:
            raise BlockingIOError(errno.EAGAIN, "would block")
        self.out += data[:n]
        return n


@given(
    pieces=st.lists(st.binary(min_size=0, max_size=50), max_size=20),
    takes=st.lists(st.integers(0, 60), max_size=30),
)
def test_bytes_leave_in_order_however_the_socket_takes_them(pieces: list[bytes], takes: list[int]) -> None:
    queue = OutputQueue()
    for piece in pieces:
        queue.append(piece)
    expected = b"".join(pieces)
    assert len(queue) == len(expected)
    sock = Sock(takes)
    while queue:
        before = len(queue)
        sent = queue.send_to(sock)
        assert len(queue) == before - sent
    assert bytes(sock.out) == expected


def test_one_send_gathers_at_most_max_buffers() -> None:
    queue = OutputQueue()
    for _ in range(MAX_BUFFERS + 10):
        queue.append(b"ab")
    sock = Sock([])
    assert queue.send_to(sock) == 2 * MAX_BUFFERS
    assert sock.calls == [MAX_BUFFERS] and len(queue) == 20


def test_a_socket_that_would_block_drops_nothing() -> None:
    queue = OutputQueue()
    queue.append(b"hello")
    with pytest.raises(BlockingIOError):
        queue.send_to(Sock([-1]))
    sock = Sock([])
    assert queue.send_to(sock) == 5 and sock.out == b"hello" and len(queue) == 0


def test_empty_pieces_and_an_empty_queue_send_nothing() -> None:
    queue = OutputQueue()
    queue.append(b"")
    sock = Sock([])
    assert not queue and queue.send_to(sock) == 0 and sock.calls == []
