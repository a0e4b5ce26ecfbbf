"""Kingbus's wire format for pysyncobj's transport, at its seam: the three TcpConnection methods
`kingbus.raft.transport` replaces, run against a stand-in connection object (the sockets and
pysyncobj's poller are not under test here; real clusters in tests/integration use them)."""

from __future__ import annotations

import errno
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE

from kingbus.raft import transport


class FakeSocket:
    def __init__(self, chunk: int, room: int | None = None) -> None:
        self.chunk = chunk
        self.room = room  # bytes the kernel would take before EAGAIN (None: unlimited)
        self.sent = bytearray()
        self.inbox = bytearray()  # what the peer sent and recv_into has not taken yet
        self.closed_by_peer = False
        self.so_error = 0

    def recv_into(self, buffer: memoryview) -> int:
        if not self.inbox:
            if self.closed_by_peer:
                return 0
            raise BlockingIOError(errno.EAGAIN, "would block")
        n = min(len(buffer), len(self.inbox))
        buffer[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def getsockopt(self, level: int, option: int) -> int:
        return self.so_error

    def sendmsg(self, buffers: list[memoryview]) -> int:
        return self.send(b"".join(buffers))

    def send(self, data: bytes) -> int:
        n = min(self.chunk, len(data))
        if self.room is not None:
            if self.room == 0:
                raise BlockingIOError(errno.EAGAIN, "would block")
            n = min(n, self.room)
            self.room -= n
        self.sent += bytes(data[:n])
        return n


class FakePoller:
    def __init__(self) -> None:
        self.subscriptions: dict[int, int] = {}

    def subscribe(self, descr: int, callback: Any, event_mask: int) -> None:
        self.subscriptions[descr] = event_mask


class FakeConnection:
    """The attributes and methods of pysyncobj's TcpConnection that the patch touches."""

    def __init__(self, password: str, *, chunk: int = 1 << 30, room: int | None = None) -> None:
        self.sendRandKey: Any = None
        self.recvRandKey: Any = None
        self.encryptor = transport.AeadEncryptor(password)
        self.recvLastTimestamp = 0
        self._TcpConnection__writeBuffer: bytes | bytearray = b""
        self._TcpConnection__readBuffer: bytes | bytearray = b""
        self._TcpConnection__socket = FakeSocket(chunk, room)
        self._TcpConnection__fileno: int | None = 7
        self._TcpConnection__poller = FakePoller()
        self.state = CONNECTION_STATE.CONNECTED
        self.disconnected = False

    def _TcpConnection__processConnection(self, descr: int, event_type: int) -> None:
        raise AssertionError("only the real poller calls it")

    def disconnect(self) -> None:
        self.disconnected = True

    def _TcpConnection__trySendBuffer(self) -> None:
        while transport._process_send(self):
            pass

    def receive(self, data: bytes) -> None:
        """The bytes arrive at the socket; read until it would block, as pysyncobj's
        `__tryReadBuffer` does."""
        self._TcpConnection__socket.inbox += data
        while transport._process_read(self):
            pass

    def messages(self) -> list[Any]:
        out = []
        while (message := transport._parse_message(self)) is not None:
            out.append(message)
        return out


messages = st.lists(
    st.dictionaries(st.sampled_from(["type", "term", "entries"]), st.binary(max_size=2000), max_size=3),
    min_size=1,
    max_size=12,
)


@given(messages=messages, send_chunk=st.integers(1, 5000), recv_sizes=st.lists(st.integers(1, 3000)))
def test_messages_arrive_whole_and_in_order_however_bytes_move(
    messages: list[dict[str, bytes]], send_chunk: int, recv_sizes: list[int]
) -> None:
    sender = FakeConnection("secret", chunk=send_chunk)
    receiver = FakeConnection("secret")
    for message in messages:
        transport._send(sender, message)
    wire = bytes(sender._TcpConnection__socket.sent)
    assert not sender._TcpConnection__writeBuffer  # everything left through partial sends
    got: list[Any] = []
    pos = 0
    for size in [*recv_sizes, len(wire)]:
        receiver.receive(wire[pos : pos + size])
        pos += size
        got.extend(receiver.messages())
    assert got == messages and not receiver.disconnected


def test_a_wrong_password_disconnects_without_unpickling() -> None:
    sender, receiver = FakeConnection("one"), FakeConnection("other")
    transport._send(sender, {"type": "append_entries"})
    receiver.receive(bytes(sender._TcpConnection__socket.sent))
    assert receiver.messages() == [] and receiver.disconnected


def test_a_replayed_older_message_disconnects() -> None:
    sender, receiver = FakeConnection("pw"), FakeConnection("pw")
    transport._send(sender, {"n": 1})
    first = bytes(sender._TcpConnection__socket.sent)
    receiver.recvLastTimestamp = 1 << 62  # the receiver already saw a later message
    receiver.receive(first)
    assert receiver.messages() == [] and receiver.disconnected


def test_a_tampered_message_disconnects() -> None:
    sender, receiver = FakeConnection("pw"), FakeConnection("pw")
    transport._send(sender, {"n": 1})
    wire = bytearray(sender._TcpConnection__socket.sent)
    wire[-1] ^= 1
    receiver.receive(bytes(wire))
    assert receiver.messages() == [] and receiver.disconnected


def test_emptied_buffers_do_not_keep_their_peak_capacity() -> None:
    sender, receiver = FakeConnection("pw"), FakeConnection("pw")
    transport._send(sender, {"big": b"x" * (1 << 20)})
    assert len(sender._TcpConnection__writeBuffer) == 0
    receiver.receive(bytes(sender._TcpConnection__socket.sent))
    assert len(receiver.messages()) == 1
    buffer = receiver._TcpConnection__readBuffer
    assert buffer == bytearray() and buffer.__sizeof__() < 1024


def test_output_the_socket_could_not_take_is_polled_for_until_sent() -> None:
    """pysyncobj's `send` never asks the poller for "writable": what a full socket left in the
    buffer waited for the next send, and a follower held back by flow control got none."""
    conn = FakeConnection("secret", room=100)
    transport._send(conn, {"type": "append_entries", "entries": b"x" * 1000})
    assert conn._TcpConnection__writeBuffer  # the socket took 100 bytes
    mask = conn._TcpConnection__poller.subscriptions[7]
    assert mask & POLL_EVENT_TYPE.WRITE and mask & POLL_EVENT_TYPE.READ and mask & POLL_EVENT_TYPE.ERROR


def test_a_connection_that_sent_everything_is_not_polled_for_writing() -> None:
    conn = FakeConnection("secret")
    transport._send(conn, {"type": "append_entries", "entries": b"x" * 1000})
    assert not conn._TcpConnection__writeBuffer
    assert conn._TcpConnection__poller.subscriptions == {}


def test_a_disconnected_connection_is_not_subscribed() -> None:
    conn = FakeConnection("secret", room=0)
    conn.state = CONNECTION_STATE.DISCONNECTED
    transport._send(conn, {"type": "heartbeat"})
    assert conn._TcpConnection__poller.subscriptions == {}


def test_a_message_larger_than_the_receive_scratch_arrives_whole() -> None:
    sender, receiver = FakeConnection("pw"), FakeConnection("pw")
    big = bytes(range(256)) * (3 * transport.RECV_SCRATCH_BYTES // 256 + 7)
    transport._send(sender, {"entries": big})
    receiver.receive(bytes(sender._TcpConnection__socket.sent))
    assert receiver.messages() == [{"entries": big}] and not receiver.disconnected


def test_a_peer_that_closes_disconnects_the_reader() -> None:
    conn = FakeConnection("pw")
    conn._TcpConnection__socket.closed_by_peer = True
    conn.receive(b"")
    assert conn.disconnected


def test_a_socket_error_disconnects_the_reader() -> None:
    conn = FakeConnection("pw")
    conn._TcpConnection__socket.so_error = errno.ECONNRESET
    conn.receive(b"abc")
    assert conn.disconnected


def test_nothing_to_read_is_not_a_disconnect() -> None:
    conn = FakeConnection("pw")
    conn.receive(b"")
    assert not conn.disconnected and conn._TcpConnection__readBuffer == b""


payloads = st.builds(
    lambda size, fill: bytes([fill]) * size,
    st.sampled_from([0, 1, 100, 65535, 65536, 65537, 200_000]),
    st.integers(0, 255),
)


@given(
    entries=st.lists(payloads, min_size=1, max_size=6),
    send_chunk=st.sampled_from([1000, 65536, 300_000, 1 << 30]),
    recv_size=st.sampled_from([999, 65536, 1 << 20]),
)
def test_large_entries_are_encrypted_in_pieces_and_arrive_whole(
    entries: list[bytes], send_chunk: int, recv_size: int
) -> None:
    """Entries of 64 KiB and more take the pieces path (`kingbus.raft.outqueue`): several
    ciphertext pieces, one gathering send each time; the receiver sees the messages as sent."""
    sender, receiver = FakeConnection("secret", chunk=send_chunk), FakeConnection("secret")
    sent = [{"type": "append_entries", "entries": [(e, i, 1) for i, e in enumerate(entries)]}, {"type": "x"}]
    for message in sent:
        transport._send(sender, message)
    wire = bytes(sender._TcpConnection__socket.sent)
    assert len(sender._TcpConnection__writeBuffer) == 0
    got: list[Any] = []
    for pos in range(0, len(wire), recv_size):
        receiver.receive(wire[pos : pos + recv_size])
        got.extend(receiver.messages())
    assert got == sent and not receiver.disconnected


def test_pieces_encrypt_to_what_one_shot_decryption_accepts() -> None:
    """The receiver decrypts a message in one call whatever way the sender encrypted it."""
    encryptor = transport.AeadEncryptor("pw")
    pieces = [b"a" * 10, b"b" * 70_000, b"c" * 5, b"d" * 100_000]
    token = b"".join(encryptor.encrypt_pieces_at_time(pieces, 42))
    assert encryptor.extract_timestamp(token) == 42
    assert encryptor.decrypt(token) == b"".join(pieces)
    one = b"".join(encryptor.encrypt_pieces_at_time([b"single"], 7))
    assert encryptor.decrypt(one) == b"single"
