"""The store: one LMDB environment and the repositories over it."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from store._engine import DEFAULT_MAP_SIZE, Engine
from store.checkpoints import CheckpointRepository
from store.cursors import CursorRepository
from store.events import EventRepository
from store.executions import AgentExecutionRepository, WorkflowExecutionRepository
from store.named import AgentRepository, WorkflowRepository
from store.sessions import SessionRepository
from store.threads import ThreadRepository


class Store:
    """polyfleet's embedded database: every resource, index and event log in one LMDB file.

    Values are serialized protobuf messages. Every repository method is a coroutine that runs
    its LMDB transaction off the event loop: writes in one writer thread, reads in a small
    pool. Each write commits durably (fsync) before it is acknowledged, so ``kill -9`` loses no
    acknowledged write, and the map doubles transparently when it fills up.

    Only one process may open a store directory at a time.

    Attributes:
        agents: Agent definitions.
        workflows: Workflow documents.
        sessions: Sessions.
        threads: Session message histories.
        agent_executions: Agent executions and their event logs.
        workflow_executions: Workflow executions and their event logs.
        checkpoints: The latest checkpoint of each workflow execution.
        events: The CloudEvents stream (published events and `emit` tasks).
        cursors: The durable positions of the orchestrator's stream followers.

    """

    def __init__(self, engine: Engine) -> None:
        """Assemble the repositories over an open engine; use :meth:`open` instead."""
        self._engine = engine
        self.agents = AgentRepository(engine)
        self.workflows = WorkflowRepository(engine)
        self.sessions = SessionRepository(engine)
        self.threads = ThreadRepository(engine, self.sessions)
        self.agent_executions = AgentExecutionRepository(engine)
        self.workflow_executions = WorkflowExecutionRepository(engine)
        self.checkpoints = CheckpointRepository(engine)
        self.events = EventRepository(engine)
        self.cursors = CursorRepository(engine)

    @classmethod
    def open(cls, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> Store:
        """Open the store in ``path``, creating the directory and databases if needed.

        Blocks briefly on file I/O; call it before serving, or through ``asyncio.to_thread``.

        Args:
            path: Directory of the LMDB environment.
            map_size: Initial map size in bytes; raised to the space the data already uses.

        """
        return cls(Engine(Path(path), map_size))

    @property
    def path(self) -> Path:
        """Directory of the LMDB environment."""
        return self._engine.path

    @property
    def map_size(self) -> int:
        """Current map size in bytes."""
        return self._engine.map_size

    @property
    def reader_slots(self) -> int:
        """Reader-table slots LMDB has handed out so far (a high-water mark).

        Bounded by the reader threads plus a spare; growth beyond that means transactions
        outlive their reads.
        """
        return self._engine.reader_slots

    def close(self) -> None:
        """Wait for queued reads and writes, then close the environment. Idempotent.

        Later calls of repository methods raise :class:`store.StoreClosedError`. Blocks until
        queued transactions finish; from async code, call it through ``asyncio.to_thread``.
        """
        self._engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
