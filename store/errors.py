"""Exceptions raised by the store.

Every exception derives from :class:`StoreError` and carries typed attributes, so the gRPC
edge can map each one to a canonical status code without parsing messages.
"""

from __future__ import annotations

from polyfleet.quoting import excerpt, quote


class StoreError(Exception):
    """Root of every exception raised by the store."""


class StoreClosedError(StoreError):
    """The store was used after :meth:`store.Store.close`."""

    def __init__(self) -> None:
        super().__init__("store is closed")


class NotFoundError(StoreError):
    """No resource of this kind has this key.

    Attributes:
        kind: Resource kind, e.g. ``"agent"``.
        key: The ID or name that was looked up.

    """

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {quote(key)} not found")
        self.kind = kind
        self.key = key


class AlreadyExistsError(StoreError):
    """A resource of this kind already has this ID or unique name.

    Attributes:
        kind: Resource kind, e.g. ``"agent"``.
        key: The conflicting ID or name.

    """

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {quote(key)} already exists")
        self.kind = kind
        self.key = key


class ConflictError(StoreError):
    """An optimistic-concurrency check failed: the stored version is not the expected one.

    Attributes:
        kind: Resource kind, e.g. ``"agent"``.
        key: ID of the resource.
        expected: Version the caller expected.
        actual: Version currently stored.

    """

    def __init__(self, kind: str, key: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{kind} {quote(key)} was modified concurrently: expected version {expected}, "
            f"stored version is {actual}"
        )
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual


class InvalidArgumentError(StoreError):
    """An argument cannot be used by the store, independent of what is stored.

    Attributes:
        field: Name of the offending argument or field.
        reason: Why it was rejected.

    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid {excerpt(field)}: {excerpt(reason, 500)}")
        self.field = field
        self.reason = reason


class InvalidPageTokenError(InvalidArgumentError):
    """A page token was not produced by the same List call (same collection and filter)."""

    def __init__(self, reason: str) -> None:
        super().__init__("page_token", reason)


class RequestKeyConflictError(StoreError):
    """A request key was reused for a request that differs from the one that first used it.

    Attributes:
        kind: Resource kind, e.g. ``"agent execution"``.
        request_key: The caller's idempotency key.
        execution_id: ID of the execution the key created.

    """

    def __init__(self, kind: str, request_key: str, execution_id: str) -> None:
        super().__init__(
            f"request key {quote(request_key)} already created {kind} {execution_id!r} "
            "from a different request"
        )
        self.kind = kind
        self.request_key = request_key
        self.execution_id = execution_id
