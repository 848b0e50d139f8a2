"""A primary database of one resource kind plus the secondary indexes that serve List.

Every index is its own LMDB database whose keys sort newest first within one indexed value:
``[value prefix] + time key + id``, the value being the resource ID. Listing is a cursor scan
of one key range; the primary database is never scanned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

from store import _keys, _paging
from store._resource import T, check_version, stamp_created, stamp_replaced
from store.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
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
    """One index key range: the index name, its database, its filter and the key prefix."""

    name: str
    db: Database
    field: str | None
    prefix: bytes


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
        """Overwrite a resource, moving the index entries whose indexed value changed."""
        key = stored.id.encode()
        txn.put(key, replacement.SerializeToString(), db=self._primary)
        for (old, db), (new, _) in zip(
            self._index_entries(stored), self._index_entries(replacement), strict=True
        ):
            if old != new:
                txn.delete(old, db=db)
                txn.put(new, key, db=db)

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
    ) -> tuple[list[T], str]:
        """Return one page of resources, newest first, and the token of the next page.

        The first filter that has an index (in declaration order) selects the key range to
        scan; any further filters are checked on each loaded resource. Filters whose value is
        empty or zero are ignored, like unset proto3 fields. The next-page token is empty
        exactly when no further resource matches.

        Raises:
            InvalidArgumentError: A filter names no index.
            InvalidPageTokenError: The token is not from this list with these filters.

        """
        active = {field: value for field, value in filters.items() if value}
        unknown = sorted(set(active) - set(self._indexes))
        if unknown:
            supported = ", ".join(self._indexes) or "none"
            raise InvalidArgumentError("filters", f"unknown {unknown}; supported: {supported}")
        scan = self._range(active)
        checks = [
            (self._indexes[field][0].extract, str(value))
            for field, value in active.items()
            if field != scan.field
        ]
        after = _paging.decode_token(scan.name, page_token, scan.prefix, _keys.TIME_KEY_BYTES + 1)
        limit = _paging.effective_page_size(page_size)

        items: list[T] = []
        last_key = b""
        with txn.cursor(db=scan.db) as cursor:
            positioned = cursor.set_range(after or scan.prefix)
            if positioned and after is not None and cursor.key() == after:
                positioned = cursor.next()
            while positioned and cursor.key().startswith(scan.prefix):
                msg = self.load(txn, cursor.value().decode())
                if msg is not None and all(str(get(msg)) == want for get, want in checks):
                    if len(items) == limit:
                        return items, _paging.encode_token(scan.name, last_key)
                    items.append(msg)
                    last_key = cursor.key()
                positioned = cursor.next()
        return items, ""

    def _range(self, active: Mapping[str, FilterValue]) -> _Range:
        for field, (_, db) in self._indexes.items():
            if field in active:
                prefix = _keys.value_prefix(field, active[field])
                return _Range(f"{self._name}.by_{field}", db, field, prefix)
        return _Range(f"{self._name}.by_time", self._by_time, None, b"")

    def _index_entries(self, msg: T) -> list[tuple[bytes, Database]]:
        suffix = _keys.time_key(msg.create_time) + msg.id.encode()
        entries = [(suffix, self._by_time)]
        for index, db in self._indexes.values():
            entries.append((_keys.value_prefix(index.field, index.extract(msg)) + suffix, db))
        return entries
