"""Errors raised by the binlog data layer.

Two kinds of failure exist and callers treat them differently:

* `MalformedEvent`: the bytes themselves are wrong (short, inconsistent sizes, bad CRC,
  an impossible field value). The upstream syncer reconnects; crash recovery truncates.
* `UnexpectedEvent`: every event is well formed, but the *sequence* breaks the transaction
  grammar (an event outside a transaction, a GTID inside one, an Anonymous GTID on a
  GTID-mode stream). This is a protocol or configuration problem, not line noise.

Both derive from `ValueError` so pure decoders can be used with plain `except ValueError`.
"""

from __future__ import annotations


class BinlogError(ValueError):
    """Base class of every error raised by `kingbus.binlog`."""


class MalformedEvent(BinlogError):
    """Bytes that are not a well-formed event (or event body, or encoded GTID set)."""


class UnexpectedEvent(BinlogError):
    """A well-formed event that may not appear at this point of a GTID-mode stream."""


class AnonymousGtidEvent(UnexpectedEvent):
    """An ANONYMOUS_GTID event: the source does not run with GTID_MODE=ON."""
