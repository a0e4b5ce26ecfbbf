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

It also keeps the connection's buffers as `bytearray`s consumed from the front.  pysyncobj
keeps them as `bytes`: every queued message copies the whole pending output, every partial
`send` copies what is left, and every parsed message copies the rest of the input -- with
megabytes of entries in flight to a follower, quadratic copying that cost the leader more
than the work itself on large transactions.

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
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SALT = b"kingbus/raft-transport/v1"
_TS = struct.Struct("<Q")
_NONCE_LEN = 12
_COMMAND_PICKLE_PROTOCOL = 5
_installed = False


class AeadEncryptor:
    """The encryptor interface pysyncobj's TcpConnection uses, over AES-256-GCM."""

    def __init__(self, password: str | bytes) -> None:
        secret = password.encode() if isinstance(password, str) else password
        key = hashlib.pbkdf2_hmac("sha256", secret, _SALT, 100_000, dklen=32)
        self._aead = AESGCM(key)

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        ts = _TS.pack(current_time)
        nonce = os.urandom(_NONCE_LEN)
        return ts + nonce + self._aead.encrypt(nonce, data, ts)

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
    data = pickle.dumps(message, protocol=5)
    if self.encryptor:
        from pysyncobj.monotonic import monotonic as monotonic_time

        data = self.encryptor.encrypt_at_time(data, int(monotonic_time()))
    buffer = self._TcpConnection__writeBuffer
    if type(buffer) is not bytearray:  # pysyncobj resets it to bytes() on (re)connection
        buffer = self._TcpConnection__writeBuffer = bytearray(buffer)
    buffer += struct.pack("i", len(data))
    buffer += data
    self._TcpConnection__trySendBuffer()
    _want_writable_while_queued(self)


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
    """pysyncobj's `__processSend`, consuming the front of a bytearray instead of copying the
    rest of the buffer after each partial send."""
    buffer = self._TcpConnection__writeBuffer
    if not buffer:
        return False
    try:
        sent = self._TcpConnection__socket.send(buffer)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            self.disconnect()
        return False
    if sent < 0:
        self.disconnect()
        return False
    if sent == 0:
        return False
    if sent == len(buffer):
        # A fresh buffer: an emptied bytearray keeps its capacity, the high-water mark of
        # what was queued for this peer.
        self._TcpConnection__writeBuffer = bytearray()
    elif type(buffer) is bytearray:
        del buffer[:sent]
    else:
        self._TcpConnection__writeBuffer = buffer[sent:]
    return True


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
