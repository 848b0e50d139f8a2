"""polyfleet's embedded LMDB store: repositories, secondary indexes and event logs.

Open one :class:`Store` per process with :meth:`Store.open`; its repositories are async and
never block the event loop.
"""

from store._engine import DEFAULT_MAP_SIZE, WriteStep
from store.checkpoints import Checkpoint, CheckpointRepository
from store.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    InvalidPageTokenError,
    NotFoundError,
    RequestKeyConflictError,
    StoreClosedError,
    StoreError,
)
from store.events import EventRecord, EventRepository
from store.executions import (
    AgentExecutionRepository,
    ExecutionRepository,
    FirstEvent,
    WorkflowExecutionRepository,
)
from store.ids import new_id
from store.named import AgentRepository, NamedResourceRepository, WorkflowRepository
from store.sessions import SessionRepository
from store.store import Store
from store.threads import ThreadRepository
from store.views import apply_view

__all__ = [
    "DEFAULT_MAP_SIZE",
    "AgentExecutionRepository",
    "AgentRepository",
    "AlreadyExistsError",
    "Checkpoint",
    "CheckpointRepository",
    "ConflictError",
    "EventRecord",
    "EventRepository",
    "ExecutionRepository",
    "FirstEvent",
    "InvalidArgumentError",
    "InvalidPageTokenError",
    "NamedResourceRepository",
    "NotFoundError",
    "RequestKeyConflictError",
    "SessionRepository",
    "Store",
    "StoreClosedError",
    "StoreError",
    "ThreadRepository",
    "WorkflowExecutionRepository",
    "WorkflowRepository",
    "WriteStep",
    "apply_view",
    "new_id",
]
