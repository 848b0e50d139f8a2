"""The shape the store needs from a stored protobuf message, and its bookkeeping fields."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Protocol, Self, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from polyfleet.v1 import common_pb2
from store.errors import ConflictError


class Resource(Protocol):
    """A protobuf message with an ID, a version and create/update times."""

    id: str
    version: int

    @property
    def create_time(self) -> Timestamp: ...

    @property
    def update_time(self) -> Timestamp: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...  # noqa: N802

    def ParseFromString(self, serialized: bytes, /) -> int: ...  # noqa: N802

    def ByteSize(self) -> int: ...  # noqa: N802

    def CopyFrom(self, other_msg: Self, /) -> None: ...  # noqa: N802


class NamedResource(Resource, Protocol):
    """A resource that is also addressed by a unique, user-chosen name, and its creator."""

    name: str

    @property
    def created_by(self) -> common_pb2.Actor: ...


class ExecutionStatus(Protocol):
    """The part of an execution status the store maintains."""

    last_sequence: int

    @property
    def phase(self) -> common_pb2.ExecutionPhase.ValueType: ...


class Execution(Resource, Protocol):
    """An agent or workflow execution."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def status(self) -> ExecutionStatus: ...


T = TypeVar("T", bound=Resource)


class _StrictClock:
    """Wall-clock nanoseconds that never repeat or go backwards within this process.

    Lists are ordered by creation time, and pagination relies on every new resource being
    newer than all earlier ones; two writes in the same clock tick, or a clock stepped back,
    would break that.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def now_ns(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_clock = _StrictClock()


def now() -> Timestamp:
    """Return the current time, later than any earlier call's."""
    ts = Timestamp()
    ts.FromNanoseconds(_clock.now_ns())
    return ts


def stamp_created(msg: Resource) -> None:
    """Set the bookkeeping fields of a resource being created."""
    ts = now()
    msg.version = 1
    msg.create_time.CopyFrom(ts)
    msg.update_time.CopyFrom(ts)


def stamp_replaced(stored: Resource, replacement: Resource) -> None:
    """Make ``replacement`` the next version of ``stored``.

    The identity and creation time always come from the stored resource: callers cannot change
    them, and the indexes are keyed by them.
    """
    replacement.id = stored.id
    replacement.create_time.CopyFrom(stored.create_time)
    replacement.version = stored.version + 1
    # Timestamp.FromNanoseconds validates in Python; the clock's values are always valid.
    update_time = replacement.update_time
    update_time.seconds, update_time.nanos = divmod(_clock.now_ns(), 1_000_000_000)


def check_version(kind: str, stored: Resource, expected_version: int | None) -> None:
    """Raise ConflictError when the caller expected another version than the stored one."""
    if expected_version is not None and stored.version != expected_version:
        raise ConflictError(kind, stored.id, expected_version, stored.version)
