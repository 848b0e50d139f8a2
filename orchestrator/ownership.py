"""One orchestrator per store: the data-directory lock, the store ID and the queue check.

Two orchestrators must never serve one store, and two stores must never share the
orchestrator task queues: a workflow task of one store's execution, run by the other
store's orchestrator, fails because that store does not know the execution.

- The data directory is locked with ``flock`` for the life of the process. The kernel drops
  the lock when the process exits however it exits (``kill -9`` included), so there is no
  stale lock to clean up.
- Each store has a random, persistent store ID (the file ``store-id`` in the data
  directory). The orchestrator's Temporal workers carry it in their identity.
- At start-up, the pollers of the orchestrator queues are read with DescribeTaskQueue: a
  poller of *another* store that polled recently means that store's orchestrator is live,
  and this one refuses to start. Pollers of the *same* store are this store's previous
  process (the lock rules out a live one), so a restart never waits for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    ListTaskQueuePartitionsRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.errors import OrchestratorError

__all__ = [
    "LOCK_FILE",
    "POLLER_LIVENESS",
    "STORE_ID_FILE",
    "AddressInUseError",
    "ApiAddressInUseError",
    "DataDirLock",
    "DataDirLockedError",
    "StartupRefusedError",
    "TaskQueueTakenError",
    "conflicting_poller",
    "ensure_queues_free",
    "load_store_id",
    "queue_pollers",
    "store_id_of",
    "worker_identity",
]

logger = logging.getLogger(__name__)

LOCK_FILE = "orchestrator.lock"
STORE_ID_FILE = "store-id"
# The server holds an idle workflow poll for up to a minute (matching.longPollExpirationInterval)
# and the SDK gives up on it after 70 s; a poller's last access time is when its current poll
# arrived. A live worker therefore shows an access at least this often, and twice that is a
# safe line between a live orchestrator and the leftover entry of a stopped one.
LONG_POLL_TIMEOUT = timedelta(seconds=70)
POLLER_LIVENESS = 2 * LONG_POLL_TIMEOUT

_NOT_ALLOWED = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)
_STORE_ID = re.compile(r"^[0-9a-f]{32}$")
_IDENTITY_STORE_ID = re.compile(r"(?:^|\s)store=([0-9a-f]{32})(?:\s|$)")


class StartupRefusedError(OrchestratorError):
    """The orchestrator must not start here: another one owns the store, queues or port."""


class DataDirLockedError(StartupRefusedError):
    """Another process holds the data directory.

    Attributes:
        data_dir: The locked directory.
        holder_pid: The PID the holder wrote into the lock file, if it could be read.

    """

    def __init__(self, data_dir: Path, holder_pid: int | None) -> None:
        self.data_dir = data_dir
        self.holder_pid = holder_pid
        holder = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"the data directory {data_dir} is in use by {holder} (lock {data_dir / LOCK_FILE}); "
            "exactly one orchestrator may run per data directory (POLYFLEET_DATA_DIR)"
        )


class TaskQueueTakenError(StartupRefusedError):
    """The orchestrator of another store polls one of this orchestrator's task queues.

    Attributes:
        task_queue: The contested queue.
        identity: The other worker's Temporal identity.
        idle: How long ago that worker last polled.

    """

    def __init__(self, task_queue: str, identity: str, idle: timedelta) -> None:
        self.task_queue = task_queue
        self.identity = identity
        self.idle = idle
        super().__init__(
            f"task queue {task_queue!r} is polled by the orchestrator of another store "
            f"({identity!r}, {idle.total_seconds():.0f} s ago); two stores on the same "
            "orchestrator queues would run each other's workflow tasks. Give this orchestrator "
            "its own TEMPORAL_*_ORCHESTRATOR_TASK_QUEUE names, or stop the other one and retry "
            f"after {POLLER_LIVENESS.total_seconds():.0f} s"
        )


class AddressInUseError(StartupRefusedError):
    """An address the orchestrator listens on cannot be bound (another process listens there).

    Attributes:
        variable: The setting that names the address.
        address: The ``host:port`` from that setting.
        reason: What the operating system said.

    """

    variable: ClassVar[str]

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {self.variable}={address}: {reason}")


class ApiAddressInUseError(AddressInUseError):
    """The gRPC API's address cannot be bound, e.g. another orchestrator listens there."""

    variable = "POLYFLEET_API_ADDRESS"


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/orchestrator.lock``, held until released.

    The lock belongs to the open file, so the kernel releases it when the process dies,
    and a second lock attempt fails even from the same process.
    """

    def __init__(self, data_dir: Path) -> None:
        """Prepare a lock on ``data_dir``; nothing is locked until :meth:`acquire`.

        Args:
            data_dir: The orchestrator's data directory (created if missing).

        """
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting, and write this process's PID into the file.

        Raises:
            DataDirLockedError: Another open lock holds the directory.
            OSError: The directory or the lock file cannot be created.

        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLockedError(self.data_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # Only for the error message of a second process: the flock is what excludes.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; safe to call more than once."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> Self:
        """Acquire the lock."""
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the lock."""
        self.release()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def load_store_id(data_dir: Path) -> str:
    """Return the data directory's store ID, creating it on first use.

    Call it while holding the :class:`DataDirLock`, so two processes never create two IDs.

    Args:
        data_dir: The orchestrator's data directory.

    Returns:
        32 lowercase hex digits, the same for the life of the data directory.

    Raises:
        StartupRefusedError: The store-id file exists but does not hold a store ID.

    """
    path = data_dir / STORE_ID_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        store_id = uuid.uuid4().hex
        partial = path.with_name(f".{STORE_ID_FILE}.partial")
        # Written whole and then renamed, so a crash never leaves a half-written ID behind.
        with partial.open("w", encoding="ascii") as file:
            file.write(f"{store_id}\n")
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
        directory = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return store_id
    if not _STORE_ID.match(text):
        raise StartupRefusedError(f"{path} does not hold a store ID (32 hex digits): {text!r}")
    return text


def worker_identity(store_id: str) -> str:
    """Return the Temporal worker identity of this process's orchestrator workers.

    Args:
        store_id: The store this orchestrator serves.

    Returns:
        ``<pid>@<host> orchestrator store=<store id>``: Temporal's usual identity plus the store.

    """
    return f"{os.getpid()}@{socket.gethostname()} orchestrator store={store_id}"


def store_id_of(identity: str) -> str | None:
    """Return the store ID a worker identity carries, or None for any other worker."""
    found = _IDENTITY_STORE_ID.search(identity)
    return found.group(1) if found else None


def conflicting_poller(
    pollers: Iterable[PollerInfo], store_id: str, now: datetime
) -> tuple[PollerInfo, timedelta] | None:
    """Pick a poller that shows another store's orchestrator to be live.

    Args:
        pollers: The pollers DescribeTaskQueue lists for an orchestrator queue.
        store_id: This orchestrator's store.
        now: The current time (UTC).

    Returns:
        The first poller of another store that polled within :data:`POLLER_LIVENESS`, and
        how long ago; None if there is none. Pollers of this store are its own earlier
        process, and never count.

    """
    for poller in pollers:
        other = store_id_of(poller.identity)
        if other is None or other == store_id:
            continue
        idle = max(timedelta(0), now - poller.last_access_time.ToDatetime(tzinfo=UTC))
        if idle <= POLLER_LIVENESS:
            return poller, idle
    return None


async def ensure_queues_free(client: Client, task_queues: Sequence[str], store_id: str) -> None:
    """Refuse to start while another store's orchestrator polls one of ``task_queues``.

    Args:
        client: The Temporal client.
        task_queues: The orchestrator's workflow task queues.
        store_id: This orchestrator's store.

    Raises:
        TaskQueueTakenError: Names the queue and the other orchestrator's identity.

    """
    now = datetime.now(UTC)
    for queue in dict.fromkeys(task_queues):
        try:
            pollers = await queue_pollers(client, queue)
        except RPCError as exc:
            if exc.status not in _NOT_ALLOWED:
                raise
            # A credential that may run workers but not describe queues: the lock still
            # guards the store; the queues are then the operator's to keep apart.
            logger.warning(
                "cannot check who else polls task queue %s (%s); make sure no other store's "
                "orchestrator uses it",
                queue,
                exc,
            )
            continue
        found = conflicting_poller(pollers, store_id, now)
        if found:
            poller, idle = found
            raise TaskQueueTakenError(queue, poller.identity, idle)
        strangers = {
            p.identity
            for p in pollers
            if store_id_of(p.identity) is None
            and now - p.last_access_time.ToDatetime(tzinfo=UTC) <= POLLER_LIVENESS
        }
        if strangers:
            # Not refused: a worker without a store ID is no polyfleet orchestrator of this
            # version (an older one, or something misconfigured), and guessing would block
            # restarts. It can still take this store's workflow tasks, so say so loudly.
            logger.warning(
                "task queue %s is also polled by workers that are not orchestrators of a "
                "known store: %s; they may take this orchestrator's workflow tasks",
                queue,
                ", ".join(sorted(strangers)),
            )


async def queue_pollers(
    client: Client,
    task_queue: str,
    task_queue_type: TaskQueueType.ValueType = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
) -> list[PollerInfo]:
    """List the pollers of one type of task on every partition of ``task_queue``.

    A poller is recorded on the partition it polled, and a queue has several partitions
    (four by default), so the root partition alone can miss a live worker.

    Args:
        client: The Temporal client.
        task_queue: The queue's name.
        task_queue_type: Workflow tasks (the default) or activity tasks.

    Returns:
        The pollers of all partitions; one worker may appear on several.

    """
    service = client.workflow_service
    try:
        listed = await service.list_task_queue_partitions(
            ListTaskQueuePartitionsRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=task_queue)
            )
        )
        keys = [
            p.key
            for p in (
                listed.activity_task_queue_partitions
                if task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
                else listed.workflow_task_queue_partitions
            )
        ]
        partitions = keys or [task_queue]
    except RPCError as exc:
        # Some deployments do not expose the partition list; the root partition still sees
        # most workers, because idle child partitions forward their polls to it.
        logger.info("cannot list the partitions of %s (%s); checking its root", task_queue, exc)
        partitions = [task_queue]
    pollers: list[PollerInfo] = []
    for partition in partitions:
        described = await service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=partition, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=task_queue_type,
            )
        )
        pollers.extend(described.pollers)
    return pollers
