"""kingbus.server -- the MySQL server that replicas and CDC readers connect to (every node).

A thin asyncio adapter over the pure codec (``kingbus.protocol``) and the pure decisions of
this package; the node starts one :class:`~kingbus.server.server.ReplicaServer` on
``mysql.bind``.

Modules, from the network inwards:

``server``
    :class:`ReplicaServer`: listener, one session task per connection, the registry of dump
    sessions, status (``replicas()``) and retention's ``oldest_needed()``.
``session``
    One connection: handshake v10 with TLS always offered, caching_sha2_password (fast path,
    full authentication over TLS or RSA), commands, SQL replies, and the dump request's
    validation before the stream starts.
``conn``
    Exact reads up to the end of the SSLRequest on the raw socket, then framed payloads over
    asyncio streams (``connect_accepted_socket``, with TLS when asked).
``dumper``
    :class:`DumpStream`: moves committed segment bytes to the replica event by event, waits
    on :class:`CommitSignal` (woken by the store listener), sends heartbeats when idle.
``dumpplan`` (pure)
    Start of GTID and file/position dumps, 1236 refusals, GTID skipping, fake Rotate, the
    FDE as sent, heartbeats -- with the position rules of notes/mysql-protocol.md §2.5.
``queries``, ``variables`` (pure)
    Answers to the statements replicas and CDC tools send; system variables from
    :class:`ServerFacts`; 1193 for unknown variables.
``registry``
    Connected dump sessions: zombies (same replica UUID / server id), status, bytes sent.
``accounts``, ``tlsmaterial``, ``identity``
    Users and privileges from configuration; TLS context (configured or self-signed) and the
    RSA key; the node's persistent server UUID.
"""
