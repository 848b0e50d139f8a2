"""Repositories of named definitions: agents and workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from polyfleet.v1 import agent_pb2, workflow_pb2
from store import _keys
from store._collection import Collection
from store._resource import NamedResource, check_version, stamp_created, stamp_replaced
from store.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from store.ids import new_id

if TYPE_CHECKING:
    from store._engine import Database, Engine, Txn

N = TypeVar("N", bound=NamedResource)


class NamedResourceRepository(Generic[N]):
    """Resources addressed by a generated ID or by a unique, user-chosen name.

    The name index maps each name to its ID, so a name is taken at most once and lookups by
    name never scan.
    """

    def __init__(
        self, engine: Engine, *, kind: str, factory: type[N], id_prefix: str, db_name: str
    ) -> None:
        """Open the repository's databases.

        Args:
            engine: The store's engine.
            kind: Resource kind used in errors, e.g. ``"agent"``.
            factory: The protobuf message class.
            id_prefix: Prefix of generated IDs, e.g. ``"agt"``.
            db_name: Name of the primary LMDB database; indexes derive their names from it.

        """
        self._engine = engine
        self._kind = kind
        self._id_prefix = id_prefix
        self._items = Collection(engine, kind, factory, db_name)
        self._names: Database = engine.database(f"{db_name}.by_name")

    async def create(self, resource: N) -> N:
        """Store a new resource with version 1.

        Args:
            resource: The resource; its ID is generated when empty. It is not modified.

        Returns:
            The stored resource.

        Raises:
            AlreadyExistsError: The name or the ID is taken.
            InvalidArgumentError: The name or the ID cannot be stored.

        """
        msg = self._items.copy(resource)
        if not msg.id:
            msg.id = new_id(self._id_prefix)
        return await self._engine.write(lambda txn: self._create(txn, self._items.copy(msg)))

    async def get(self, id_or_name: str) -> N:
        """Return the resource with this ID, or else with this name.

        Raises:
            NotFoundError: Neither matches.

        """
        return await self._engine.lookup(lambda txn: self._require(txn, id_or_name))

    async def list(self, page_size: int = 0, page_token: str = "") -> tuple[list[N], str]:
        """Return one page of resources, newest first, and the next page token.

        Args:
            page_size: At most this many; non-positive means 50, and at most 1000.
            page_token: Empty for the first page, else a token returned by the previous call.

        Returns:
            The resources and the next page token, empty on the last page.

        Raises:
            InvalidPageTokenError: The token did not come from this list.

        """
        return await self._engine.read(lambda txn: self._items.page(txn, {}, page_size, page_token))

    async def update(self, resource: N, expected_version: int | None = None) -> N:
        """Replace a resource's definition, found by ID when set, else by name.

        The ID and creation time are kept; the version is incremented. When the ID is set and
        the name differs from the stored one, the resource is renamed.

        Args:
            resource: The new definition. It is not modified.
            expected_version: When set, the stored version must equal it.

        Returns:
            The stored resource.

        Raises:
            NotFoundError: No resource has this ID (or name).
            ConflictError: The stored version is not ``expected_version``.
            AlreadyExistsError: The new name belongs to another resource.

        """
        msg = self._items.copy(resource)

        def replace(txn: Txn) -> N:
            stored = self._items.load(txn, msg.id) if msg.id else self._by_name(txn, msg.name)
            if stored is None:
                raise NotFoundError(self._kind, msg.id or msg.name)
            check_version(self._kind, stored, expected_version)
            return self._replace(txn, stored, self._items.copy(msg))

        return await self._engine.write(replace)

    async def delete(self, id_or_name: str) -> None:
        """Delete the resource with this ID, or else with this name.

        Raises:
            NotFoundError: Neither matches.

        """

        def delete(txn: Txn) -> None:
            stored = self._require(txn, id_or_name)
            self._items.remove(txn, stored)
            txn.delete(_keys.name_key(self._kind, stored.name), db=self._names)

        await self._engine.write(delete)

    async def apply(self, resource: N) -> tuple[N, bool]:
        """Create the resource, or replace the definition of the one with the same name.

        Lookup and write happen in one transaction, so concurrent applies of one name create it
        once.

        Args:
            resource: The definition. It is not modified.

        Returns:
            The stored resource, and whether it was created.

        Raises:
            AlreadyExistsError: The resource is new and its preset ID is taken.

        """
        msg = self._items.copy(resource)

        def apply(txn: Txn) -> tuple[N, bool]:
            stored = self._by_name(txn, msg.name)
            if stored is not None:
                return self._replace(txn, stored, self._items.copy(msg)), False
            created = self._items.copy(msg)
            if not created.id:
                created.id = new_id(self._id_prefix)
            return self._create(txn, created), True

        return await self._engine.write(apply)

    def _create(self, txn: Txn, msg: N) -> N:
        name_key = self._name_key(msg.name)
        if txn.get(name_key, db=self._names) is not None:
            raise AlreadyExistsError(self._kind, msg.name)
        stamp_created(msg)
        self._items.insert(txn, msg)
        txn.put(name_key, msg.id.encode(), db=self._names)
        return msg

    def _replace(self, txn: Txn, stored: N, replacement: N) -> N:
        if replacement.name != stored.name:
            new_key = self._name_key(replacement.name)
            if txn.get(new_key, db=self._names) is not None:
                raise AlreadyExistsError(self._kind, replacement.name)
            txn.delete(self._name_key(stored.name), db=self._names)
            txn.put(new_key, stored.id.encode(), db=self._names)
        stamp_replaced(stored, replacement)
        # Who created it stays whoever did (the caller's copy names only the updater).
        replacement.created_by.CopyFrom(stored.created_by)
        self._items.replace(txn, stored, replacement)
        return replacement

    def _by_name(self, txn: Txn, name: str) -> N | None:
        key = name.encode()
        if not key or len(key) > _keys.MAX_INDEXED_VALUE_BYTES:
            return None  # such a name cannot have been stored
        resource_id = txn.get(key, db=self._names)
        return None if resource_id is None else self._items.load(txn, resource_id.decode())

    def _require(self, txn: Txn, id_or_name: str) -> N:
        msg = self._items.load(txn, id_or_name)
        if msg is None:
            msg = self._by_name(txn, id_or_name)
        if msg is None:
            raise NotFoundError(self._kind, id_or_name)
        return msg

    def _name_key(self, name: str) -> bytes:
        if not name:
            raise InvalidArgumentError(f"{self._kind}.name", "must not be empty")
        return _keys.name_key(self._kind, name)


class AgentRepository(NamedResourceRepository[agent_pb2.Agent]):
    """Agent definitions, addressed by ID (``agt-…``) or unique name."""

    def __init__(self, engine: Engine) -> None:
        """Open the agent databases of ``engine``."""
        super().__init__(
            engine, kind="agent", factory=agent_pb2.Agent, id_prefix="agt", db_name="agents"
        )


class WorkflowRepository(NamedResourceRepository[workflow_pb2.Workflow]):
    """Workflow documents, addressed by ID (``wfl-…``) or unique name."""

    def __init__(self, engine: Engine) -> None:
        """Open the workflow databases of ``engine``."""
        super().__init__(
            engine,
            kind="workflow",
            factory=workflow_pb2.Workflow,
            id_prefix="wfl",
            db_name="workflows",
        )
