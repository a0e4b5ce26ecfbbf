"""A faster wire format for pysyncobj's transport (patched in; both ends run Kingbus).

pysyncobj 0.3.17 frames every message as ``len + Fernet(zlib(pickle(message, protocol=2)))``.
For a binlog server that is the bottleneck, measured with py-spy on a leader ingesting 1 MB
transactions (6-7 MB/s through three nodes, ~90% of the leader's CPU in `TcpConnection.send`):

* protocol 2 pickles `bytes` as latin-1 text re-encoded in UTF-8 -- the Raft entries are
  binary, so every entry grows ~1.5x and is encoded byte by byte;
* zlib level 3 runs over every message once per follower, on data (binlog rows) that is often
  already compressed by the source, on a network (loopback, a pod network) that is not the
  bottleneck;
* Fernet is AES-CBC + HMAC-SHA256 + base64, another 1.33x and two more passes.

It also changes how bytes wait.  pysyncobj keeps a connection's buffers as `bytes`: every
queued message copies the whole pending output, every partial `send` copies what is left, and
every parsed message copies the rest of the input -- with megabytes of entries in flight to a
follower, quadratic copying that cost the leader more than the work itself on large
transactions.  Here output is a queue of pieces (`kingbus.raft.outqueue`: entries are neither
copied into the pickle nor into the queue, and are encrypted piece by piece), and input is a
bytearray consumed from the front, filled from one reused receive buffer and parsed through a
view.

And it keeps sending what the socket could not take at once.  pysyncobj asks its poller to
report a connection writable only from inside a "writable" event, and drops the request when
the buffer is empty then; `send` itself never asks.  So once a follower had caught up, output
left over by a later `send` went out only with the next `send` to that follower (a heartbeat,
up to appendEntriesPeriod later), and a follower the leader stopped sending to (flow control,
`kingbus.raft.tuned`) was never sent the rest at all: its connection stalled mid-message.

This module keeps the framing (a 4-byte length, then the payload) and the message contents,
and changes only how a message becomes bytes: pickle protocol 5 (bytes stay raw), no
compression, and AES-256-GCM (one authenticated pass) keyed from the cluster password.  The
timestamp that pysyncobj's receiver checks for monotonicity is carried in clear and bound to
the ciphertext as associated data, as Fernet binds it.

`install()` must run before any SyncObj is created; every member of a cluster must use it
(they all run Kingbus), and `check()` guards the pysyncobj internals it relies on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import socket
import struct
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kingbus.raft.outqueue import OutputQueue, Piece, pickle_pieces

_SALT = b"kingbus/raft-transport/v1"
_TS = struct.Struct("<Q")
_NONCE_LEN = 12
_COMMAND_PICKLE_PROTOCOL = 5
_installed = False


class AeadEncryptor:
    """The encryptor interface pysyncobj's TcpConnection uses, over AES-256-GCM."""

    def __init__(self, password: str | bytes) -> None:
        secret = password.encode() if isinstance(password, str) else password
        self._key = hashlib.pbkdf2_hmac("sha256", secret, _SALT, 100_000, dklen=32)
        self._aead = AESGCM(self._key)

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        ts = _TS.pack(current_time)
        nonce = os.urandom(_NONCE_LEN)
        return ts + nonce + self._aead.encrypt(nonce, data, ts)

    def encrypt_pieces_at_time(self, pieces: Sequence[Piece], current_time: int) -> list[Piece]:
        """`encrypt_at_time` of the pieces' concatenation, as pieces (the same bytes when
        joined): a large message is encrypted piece by piece and never joined."""
        ts = _TS.pack(current_time)
        nonce = os.urandom(_NONCE_LEN)
        if len(pieces) == 1:
            return [ts, nonce, self._aead.encrypt(nonce, pieces[0], ts)]
        encryptor = Cipher(algorithms.AES(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(ts)
        out: list[Piece] = [ts, nonce]
        out.extend(encryptor.update(piece) for piece in pieces)
        out.append(encryptor.finalize())
        out.append(encryptor.tag)
        return out

    def extract_timestamp(self, token: bytes | memoryview) -> int:
        if len(token) < _TS.size + _NONCE_LEN:
            raise ValueError("message too short")
        return int(_TS.unpack_from(token)[0])

    def decrypt(self, token: bytes | memoryview) -> bytes:
        ts = token[: _TS.size]
        nonce = token[_TS.size : _TS.size + _NONCE_LEN]
        try:
            return self._aead.decrypt(nonce, token[_TS.size + _NONCE_LEN :], ts)
        except InvalidTag:
            raise ValueError("message failed authentication (wrong Raft password?)") from None

    # pysyncobj's utility client (syncobj_admin) calls encrypt/decrypt without a time.
    def encrypt(self, data: bytes) -> bytes:
        return self.encrypt_at_time(data, 0)


def _send(self: Any, message: Any) -> None:
    if self.sendRandKey:
        message = (self.sendRandKey, message)
    pieces = pickle_pieces(message)
    if self.encryptor:
        from pysyncobj.monotonic import monotonic as monotonic_time

        pieces = self.encryptor.encrypt_pieces_at_time(pieces, int(monotonic_time()))
    queue = _output_queue(self)
    queue.append(struct.pack("i", sum(len(piece) for piece in pieces)))
    for piece in pieces:
        queue.append(piece)
    self._TcpConnection__trySendBuffer()
    _want_writable_while_queued(self)


def _output_queue(self: Any) -> OutputQueue:
    queue = self._TcpConnection__writeBuffer
    if type(queue) is not OutputQueue:  # pysyncobj resets it to bytes() on (re)connection
        leftover = queue
        queue = self._TcpConnection__writeBuffer = OutputQueue()
        queue.append(bytes(leftover))
    return queue


def _want_writable_while_queued(self: Any) -> None:
    """Output is left over: have the poller report the socket writable, so the rest is sent as
    soon as the peer takes it (pysyncobj's writable handler re-subscribes without WRITE once
    the buffer is empty, so an idle connection is not polled for writing)."""
    if not self._TcpConnection__writeBuffer:
        return
    fileno = self._TcpConnection__fileno
    if fileno is None or self.state != _CONNECTED:
        return
    self._TcpConnection__poller.subscribe(fileno, self._TcpConnection__processConnection, _READ_WRITE_ERROR)


def _process_send(self: Any) -> bool:
    """pysyncobj's `__processSend` over the queue of pieces (`kingbus.raft.outqueue`): one
    gathering send, and the queue drops what the socket took (pysyncobj copied the rest of its
    buffer after every partial send)."""
    if not self._TcpConnection__writeBuffer:
        return False
    try:
        sent = _output_queue(self).send_to(self._TcpConnection__socket)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            self.disconnect()
        return False
    if sent < 0:
        self.disconnect()
        return False
    return sent > 0


#: Bytes one `recv_into` may take.  pysyncobj calls `recv(recvBufferSize)` (16 MiB here),
#: which allocates a fresh 16 MiB object per call and faults its pages in: 0.73 CPU-s per GiB
#: received in a loopback measurement against 0.24 with a reused 256 KiB buffer (the socket's
#: own SO_RCVBUF stays large; only the copy out of it is done in smaller steps).
RECV_SCRATCH_BYTES = 256 * 1024


def _process_read(self: Any) -> bool:
    """pysyncobj's `__processRead`, receiving into one reused buffer per connection and
    appending to the bytearray input buffer (same errors, same disconnects)."""
    scratch = self.__dict__.get("_kb_recv_scratch")
    if scratch is None:
        scratch = self._kb_recv_scratch = memoryview(bytearray(RECV_SCRATCH_BYTES))
    sock = self._TcpConnection__socket
    try:
        received = sock.recv_into(scratch)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            self.disconnect()
        return False
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        self.disconnect()
        return False
    if not received:
        self.disconnect()
        return False
    buffer = self._TcpConnection__readBuffer
    if type(buffer) is not bytearray:
        buffer = self._TcpConnection__readBuffer = bytearray(buffer)
    buffer += scratch[:received]
    return True


def _parse_message(self: Any) -> Any:
    buffer = self._TcpConnection__readBuffer
    if type(buffer) is not bytearray:  # from then on pysyncobj's `+=` appends in place
        buffer = self._TcpConnection__readBuffer = bytearray(buffer)
    if len(buffer) < 4:
        return None
    length = struct.unpack_from("i", buffer)[0]
    if len(buffer) - 4 < length:
        return None
    # A view, not a slice: decrypting and unpickling read the message where it arrived
    # (a slice copied every message once more).  Released before the buffer is resized.
    view = memoryview(buffer)
    try:
        data: Any = view[4 : 4 + length]
        if self.encryptor:
            timestamp = self.encryptor.extract_timestamp(data)
            if timestamp < self.recvLastTimestamp:
                raise ValueError("replayed or reordered message")
            self.recvLastTimestamp = timestamp
            data = self.encryptor.decrypt(data)
        # Only after authentication: what a member with the password sent is trusted, as in
        # pysyncobj itself.
        message = pickle.loads(data)
        if self.recvRandKey:
            rand_key, message = message
            if rand_key != self.recvRandKey:
                raise ValueError("message for another connection")
    except Exception:
        self.disconnect()
        return None
    finally:
        data = None
        view.release()
    if len(buffer) == 4 + length:
        self._TcpConnection__readBuffer = bytearray()  # as for the output: drop the capacity
    else:
        del buffer[: 4 + length]
    return message


def check() -> None:
    import pysyncobj.pickle
    import pysyncobj.syncobj
    import pysyncobj.tcp_connection

    conn = pysyncobj.tcp_connection.TcpConnection
    for name in (
        "send",
        "_TcpConnection__processParseMessage",
        "_TcpConnection__processRead",
        "_TcpConnection__trySendBuffer",
        "_TcpConnection__processSend",
        "_TcpConnection__processConnection",
    ):
        if not hasattr(conn, name):
            raise RuntimeError(f"pysyncobj TcpConnection has no {name}: the transport patch needs 0.3.17")
    if getattr(pysyncobj.pickle, "__protocol", None) not in (2, _COMMAND_PICKLE_PROTOCOL):
        raise RuntimeError("pysyncobj.pickle has no __protocol: the command pickling patch needs 0.3.17")
    if not hasattr(pysyncobj.syncobj, "getEncryptor"):
        raise RuntimeError("pysyncobj.syncobj.getEncryptor is missing: the transport patch needs 0.3.17")


def _poll_constants() -> tuple[int, int]:
    from pysyncobj.poller import POLL_EVENT_TYPE
    from pysyncobj.tcp_connection import CONNECTION_STATE

    return CONNECTION_STATE.CONNECTED, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR


_CONNECTED, _READ_WRITE_ERROR = _poll_constants()


def install() -> None:
    """Switch pysyncobj's transport to the Kingbus wire format (idempotent)."""
    global _installed
    if _installed:
        return
    check()
    import pysyncobj.pickle
    import pysyncobj.syncobj
    import pysyncobj.tcp_connection

    conn = pysyncobj.tcp_connection.TcpConnection
    conn.send = _send
    conn._TcpConnection__processSend = _process_send
    conn._TcpConnection__processParseMessage = _parse_message
    conn._TcpConnection__processRead = _process_read
    pysyncobj.syncobj.getEncryptor = AeadEncryptor
    # Commands (and membership changes) are pickled by pysyncobj.pickle with a module-global
    # protocol, 2 for Python 2's sake; protocol 5 keeps the entries' bytes raw.
    setattr(pysyncobj.pickle, "__protocol", _COMMAND_PICKLE_PROTOCOL)
    _installed = True
