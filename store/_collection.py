"""A primary database of one resource kind plus the secondary indexes that serve List.

Every index is its own LMDB database whose keys sort newest first within one indexed value:
``[value prefix] + time key + id``, the value being the resource ID. Listing is a cursor scan
of one key range, narrowed by creation time; the primary database is never scanned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

from store import _keys, _paging
from store._resource import T, check_version, stamp_created, stamp_replaced
from store.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidPageTokenError,
    NotFoundError,
)
from store.ids import MAX_ID_BYTES, check_id

if TYPE_CHECKING:
    from store._engine import Database, Engine, Txn

FilterValue = str | int


@dataclass(frozen=True)
class FieldIndex(Generic[T]):
    """A secondary index on one field, usable as a List filter.

    Attributes:
        field: Filter name, e.g. ``"agent"`` or ``"phase"``.
        extract: Reads the indexed value from a resource.

    """

    field: str
    extract: Callable[[T], FilterValue]


@dataclass(frozen=True)
class _Range:
    """The keys one List scans: ``[start, end)`` within ``prefix`` of one index.

    Attributes:
        name: Name of the index, part of page tokens.
        db: The index database.
        field: The filter the index serves; None for the time index.
        prefix: Prefix of every key of the filter value (empty for the time index).
        start: First key of the creation-time range; ``prefix`` when unbounded.
        end: First key after the range; None when it runs to the end of ``prefix``.

    """

    name: str
    db: Database
    field: str | None
    prefix: bytes
    start: bytes
    end: bytes | None

    def holds(self, key: bytes) -> bool:
        """Return whether ``key`` lies in the range."""
        return (
            key.startswith(self.prefix)
            and self.start <= key
            and (self.end is None or key < self.end)
        )


class Collection(Generic[T]):
    """Stores one resource kind and keeps its indexes in step, inside the caller's transaction.

    Methods take an open transaction so repositories can combine several collections in one
    atomic write.
    """

    def __init__(
        self,
        engine: Engine,
        kind: str,
        factory: type[T],
        name: str,
        indexes: Sequence[FieldIndex[T]] = (),
    ) -> None:
        self.kind = kind
        self.factory = factory
        self._name = name
        self._primary = engine.database(name)
        self._by_time = engine.database(f"{name}.by_time")
        # Declaration order is the preference order when a List names several filters.
        self._indexes = {ix.field: (ix, engine.database(f"{name}.by_{ix.field}")) for ix in indexes}

    def copy(self, msg: T) -> T:
        """Return a deep copy, so callers' messages are never mutated by the store."""
        clone = self.factory()
        clone.CopyFrom(msg)
        return clone

    def load(self, txn: Txn, resource_id: str) -> T | None:
        """Return the stored resource, or None."""
        key = resource_id.encode()
        if not key or len(key) > MAX_ID_BYTES:
            return None  # such an ID cannot have been stored, and LMDB rejects the key
        data = txn.get(key, db=self._primary)
        if data is None:
            return None
        msg = self.factory()
        msg.ParseFromString(data)
        return msg

    def require(self, txn: Txn, resource_id: str) -> T:
        """Return the stored resource.

        Raises:
            NotFoundError: There is none.

        """
        msg = self.load(txn, resource_id)
        if msg is None:
            raise NotFoundError(self.kind, resource_id)
        return msg

    def add(self, txn: Txn, msg: T) -> T:
        """Stamp a new resource with version 1 and its creation time, and insert it.

        Raises:
            AlreadyExistsError: A resource with this ID exists.

        """
        stamp_created(msg)
        self.insert(txn, msg)
        return msg

    def modify(
        self,
        txn: Txn,
        resource_id: str,
        mutate: Callable[[T], None],
        expected_version: int | None = None,
    ) -> T:
        """Read-modify-write of one resource within the caller's transaction.

        Raises:
            NotFoundError: There is no such resource.
            ConflictError: The stored version is not ``expected_version``.

        """
        stored = self.require(txn, resource_id)
        check_version(self.kind, stored, expected_version)
        updated = self.copy(stored)
        mutate(updated)
        stamp_replaced(stored, updated)
        self.replace(txn, stored, updated)
        return updated

    def insert(self, txn: Txn, msg: T) -> None:
        """Store a new resource and its index entries.

        Raises:
            AlreadyExistsError: A resource with this ID exists.

        """
        key = check_id(msg.id)
        if not txn.put(key, msg.SerializeToString(), overwrite=False, db=self._primary):
            raise AlreadyExistsError(self.kind, msg.id)
        for index_key, db in self._index_entries(msg):
            txn.put(index_key, key, db=db)

    def replace(self, txn: Txn, stored: T, replacement: T) -> None:
        """Overwrite a resource, moving the index entries whose indexed value changed.

        ``replacement`` has the ID and creation time of ``stored`` (``stamp_replaced``), so
        the time index entry stays, and only an index whose value changed is touched.
        """
        key = stored.id.encode()
        txn.put(key, replacement.SerializeToString(), db=self._primary)
        suffix = b""
        for index, db in self._indexes.values():
            old, new = index.extract(stored), index.extract(replacement)
            if old != new:
                suffix = suffix or _keys.time_key(stored.create_time) + key
                txn.delete(_keys.value_prefix(index.field, old) + suffix, db=db)
                txn.put(_keys.value_prefix(index.field, new) + suffix, key, db=db)

    def remove(self, txn: Txn, stored: T) -> None:
        """Delete a resource and its index entries."""
        txn.delete(stored.id.encode(), db=self._primary)
        for index_key, db in self._index_entries(stored):
            txn.delete(index_key, db=db)

    def page(
        self,
        txn: Txn,
        filters: Mapping[str, FilterValue],
        page_size: int,
        page_token: str,
        *,
        created_after: int = 0,
        created_before: int = 0,
        match: Callable[[T], bool] | None = None,
        project: Callable[[T], T] | None = None,
        max_bytes: int = 0,
    ) -> tuple[list[T], str]:
        """Return one page of resources, newest first, and the token of the next page.

        The first filter that has an index (in declaration order) selects the index range to
        scan, and the creation-time bounds narrow it: the scan seeks to ``created_before`` and
        stops at ``created_after``, never reading keys outside them. Any further filters, and
        ``match``, are checked on each loaded resource. Filters whose value is empty or zero are
        ignored, like unset proto3 fields. The next-page token is empty exactly when no further
        resource matches.

        A page ends at ``page_size`` resources or before the resource that would take the
        serialized size of the page over ``max_bytes``, whichever comes first; a page holds at
        least one resource, so a single large one is never skipped.

        Args:
            txn: The read transaction.
            filters: Field name to required value.
            page_size: At most this many; non-positive means the default.
            page_token: Empty for the first page, else the previous call's next-page token.
            created_after: Unix nanoseconds, inclusive; 0 means unbounded.
            created_before: Unix nanoseconds, exclusive; 0 means unbounded.
            match: When set, only resources for which it returns True.
            project: When set, maps each matching resource to what is returned (and counted
                against ``max_bytes``), e.g. a trimmed view.
            max_bytes: Byte budget of the page's resources; non-positive means unbounded.

        Raises:
            InvalidArgumentError: A filter names no index.
            InvalidPageTokenError: The token is not from this list with these filters and
                times.

        """
        active = {field: value for field, value in filters.items() if value}
        unknown = sorted(set(active) - set(self._indexes))
        if unknown:
            supported = ", ".join(self._indexes) or "none"
            raise InvalidArgumentError("filters", f"unknown {unknown}; supported: {supported}")
        scan = self._range(active, created_after, created_before)
        checks = [
            (self._indexes[field][0].extract, str(value))
            for field, value in active.items()
            if field != scan.field
        ]
        after = _paging.decode_token(scan.name, page_token, scan.prefix, _keys.TIME_KEY_BYTES + 1)
        if after is not None and not scan.holds(after):
            raise InvalidPageTokenError("the token belongs to a list of other creation times")
        limit = _paging.effective_page_size(page_size)

        items: list[T] = []
        last_key = b""
        used = 0
        with txn.cursor(db=scan.db) as cursor:
            positioned = cursor.set_range(after or scan.start)
            if positioned and after is not None and cursor.key() == after:
                positioned = cursor.next()
            while positioned and scan.holds(cursor.key()):
                msg = self.load(txn, cursor.value().decode())
                if (
                    msg is not None
                    and all(str(get(msg)) == want for get, want in checks)
                    and (match is None or match(msg))
                ):
                    if len(items) == limit:
                        return items, _paging.encode_token(scan.name, last_key)
                    item = project(msg) if project is not None else msg
                    # Repeated fields cost a tag and a length prefix each; 16 bytes covers
                    # them, so the page serializes within the budget.
                    size = item.ByteSize() + 16
                    if items and max_bytes > 0 and used + size > max_bytes:
                        return items, _paging.encode_token(scan.name, last_key)
                    items.append(item)
                    used += size
                    last_key = cursor.key()
                positioned = cursor.next()
        return items, ""

    def count(self, txn: Txn, field: str, value: FilterValue) -> int:
        """Return how many resources have ``value`` in the indexed ``field``.

        Only the index keys of that value are read (no resource is loaded).

        Raises:
            InvalidArgumentError: ``field`` has no index.

        """
        if field not in self._indexes:
            supported = ", ".join(self._indexes) or "none"
            raise InvalidArgumentError("field", f"unknown {field!r}; supported: {supported}")
        db = self._indexes[field][1]
        prefix = _keys.value_prefix(field, value)
        total = 0
        with txn.cursor(db=db) as cursor:
            positioned = cursor.set_range(prefix)
            while positioned and cursor.key().startswith(prefix):
                total += 1
                positioned = cursor.next()
        return total

    def _range(
        self, active: Mapping[str, FilterValue], created_after: int, created_before: int
    ) -> _Range:
        name, db, field, prefix = f"{self._name}.by_time", self._by_time, None, b""
        for index_field, (_, index_db) in self._indexes.items():
            if index_field in active:
                name, db, field = f"{self._name}.by_{index_field}", index_db, index_field
                prefix = _keys.value_prefix(index_field, active[index_field])
                break
        start, end = _keys.time_bounds(prefix, created_after, created_before)
        return _Range(name, db, field, prefix, start, end)

    def _index_entries(self, msg: T) -> list[tuple[bytes, Database]]:
        suffix = _keys.time_key(msg.create_time) + msg.id.encode()
        entries = [(suffix, self._by_time)]
        for index, db in self._indexes.values():
            entries.append((_keys.value_prefix(index.field, index.extract(msg)) + suffix, db))
        return entries
