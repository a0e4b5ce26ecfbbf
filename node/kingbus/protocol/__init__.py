"""kingbus.protocol -- the MySQL wire codec of the replica-facing server. Pure: no sockets,
no asyncio, no clock. Bytes in, values out; values in, bytes out. The asyncio adapter
(``kingbus.server``) owns the connection and calls these functions.

A connection, as the adapter drives it (``tests/unit/protocol/protocol_stub_server.py`` is a
complete blocking example, exercised by PyMySQL, the mysql CLI, mysqlbinlog and a MySQL 9.7
replica)::

    reader = framing.PacketReader(max_payload=...)     # feed() socket bytes, next_packet()
    nonce = handshake.make_nonce()
    send(framing.frame(handshake.encode_handshake(Handshake(...)), 0))        # -> next seq 1
    packet = reader.next_packet(expected_seq=1)        # read only reader.wanted bytes here:
    first = handshake.decode_handshake_response(packet.payload)  # an SslRequest is followed
    #   at once by the TLS ClientHello; after start_tls read the real response (seq 2).
    authenticator = auth.Authenticator(users=..., nonce=nonce, host=peer, tls=is_tls)
    step = authenticator.start(first)                  # then receive(payload) until step.done
    send(framing.frame_all(step.send, packet.next_seq))  # OK/ERR included; outcome Accept/Reject
    loop: packet = reader.next_packet(expected_seq=0)  # every command starts at seq 0
          command = commands.decode_command(packet.payload)   # Query -> sql.classify(text)
          reply with results.encode_resultset(...), responses.encode_ok(...) or
          error.encode(caps), framed from packet.next_seq; a dump streams
          stream.event_payload(event) packets from seq 1 on.

Public modules and their main names:

``errors``
    :class:`MySQLError` (exception *and* ERR packet: ``.encode(caps)``), :class:`ProtocolError`
    (malformed input; subclasses :class:`PacketTooLarge`, :class:`PacketsOutOfOrder`),
    ``ER_*`` codes, ``access_denied()``, ``unknown_command()``, ``unknown_system_variable()``.
``constants``
    :class:`Capability`, ``SERVER_CAPABILITIES``, :class:`ServerStatus`, :class:`Command`,
    :class:`ColumnType`, :class:`ColumnFlag`, :class:`Charset` (``UTF8MB4_0900_AI_CI`` = 255).
``framing``
    :class:`PacketReader` (``feed``, ``next_packet``, ``packets``, ``wanted`` for exact reads
    before a TLS upgrade), :class:`Packet`, ``frame(payload, seq) -> (bytes, next_seq)``,
    ``frame_all(payloads, seq)``.
``wire``
    Length-encoded ints/strings and NUL strings (``lenenc_int``, ``lenenc_bytes``, ...), and
    :class:`wire.Reader`, the bounds-checked cursor every decoder uses.
``responses``
    :class:`Ok` / ``encode_ok(ok, caps, as_eof=)`` / ``decode_ok``, :class:`Eof` /
    ``encode_eof`` / ``decode_eof``, ``decode_err``, ``is_ok``/``is_err``/``is_eof``.
``results``
    :class:`Column` (``Column.text``, ``Column.integer``), ``encode_resultset(columns, rows,
    caps)`` -> payloads, ``decode_resultset``, :class:`ResultSet`.
``handshake``
    :class:`Handshake`, ``encode_handshake``/``decode_handshake``, ``make_nonce``,
    ``decode_handshake_response`` -> :class:`HandshakeResponse` | :class:`SslRequest`,
    ``encode_handshake_response``, ``negotiate``.
``scrambles``
    ``caching_sha2_stage2``, ``native_stage2``, ``scramble_caching_sha2``, ``scramble_native``,
    ``verify_*``, RSA helpers (``generate_rsa_key``, ``load_rsa_key``, ``public_key_pem``,
    ``rsa_encrypt_password``, ``rsa_decrypt_password``).
``auth``
    :class:`Credentials` (``from_password``), :class:`Authenticator` (``start``, ``receive``)
    -> :class:`AuthStep` (``send``, ``outcome``: :class:`Accept` | :class:`Reject`).
``commands``
    ``decode_command(payload)`` -> :class:`Quit` | :class:`Ping` | :class:`Query` |
    :class:`InitDb` | :class:`BinlogDump` | :class:`RegisterReplica` |
    :class:`BinlogDumpGtid` | :class:`UnknownCommand` (answer with ``.error()``, keep going);
    :class:`DumpFlag`; client-side ``encode_*`` for tests and upstream use.
``stream``
    Dump-stream payloads: ``event_payload(event)``, ``semisync_event_payload(event,
    ack_wanted=)``, ``decode_semisync_ack`` -> :class:`SemiSyncAck`.
``sql``
    ``classify(text)`` -> :class:`Select` | :class:`Set` | :class:`SetNames` |
    :class:`SetCharacterSet` | :class:`ShowVariables` | :class:`ShowStatus` |
    :class:`ShowBinaryLogs` | :class:`ShowBinaryLogStatus` | :class:`ShowBinlogEvents` |
    :class:`ShowReplicas` | :class:`Kill` | :class:`Unknown`; never raises.
``sqltokens``
    The tokenizer under ``sql`` (comments, version comments, quoting, variables).
``like``
    ``like(value, pattern)``: SQL LIKE, case-insensitive by default.

Every decoder raises only :class:`errors.ProtocolError` (or another :class:`errors.MySQLError`)
on bad input -- never ``IndexError``/``struct.error``; a fuzz test holds them to it.
"""

from kingbus.protocol import (
    auth,
    commands,
    constants,
    errors,
    framing,
    handshake,
    like,
    responses,
    results,
    scrambles,
    sql,
    sqltokens,
    stream,
    wire,
)
from kingbus.protocol.errors import MySQLError, PacketsOutOfOrder, PacketTooLarge, ProtocolError

__all__ = [
    "MySQLError",
    "PacketTooLarge",
    "PacketsOutOfOrder",
    "ProtocolError",
    "auth",
    "commands",
    "constants",
    "errors",
    "framing",
    "handshake",
    "like",
    "responses",
    "results",
    "scrambles",
    "sql",
    "sqltokens",
    "stream",
    "wire",
]
