"""One orchestrator per store: the data-directory lock, the store ID, the poller rule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.taskqueue.v1 import PollerInfo

from orchestrator.ownership import (
    LOCK_FILE,
    POLLER_LIVENESS,
    STORE_ID_FILE,
    DataDirLock,
    DataDirLockedError,
    StartupRefusedError,
    conflicting_poller,
    load_store_id,
    store_id_of,
    worker_identity,
)

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OURS = "a" * 32
THEIRS = "b" * 32

HOLD_LOCK = """
import sys, time
from pathlib import Path
from orchestrator.ownership import DataDirLock
DataDirLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_lock_on_the_directory_is_refused_naming_it_and_the_holder(
    tmp_path: Path,
) -> None:
    with DataDirLock(tmp_path / "data"):
        with pytest.raises(DataDirLockedError) as refused:
            DataDirLock(tmp_path / "data").acquire()

    assert refused.value.holder_pid == os.getpid()
    assert refused.value.data_dir == tmp_path / "data"
    assert f"{tmp_path / 'data'} is in use by process {os.getpid()}" in str(refused.value)
    assert isinstance(refused.value, StartupRefusedError)


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    first.release()
    first.release()

    with DataDirLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    # The context manager closes the stdout pipe too, once the holder is reaped.
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(DataDirLockedError) as refused:
                DataDirLock(tmp_path).acquire()
            assert refused.value.holder_pid == holder.pid
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()

    with DataDirLock(tmp_path):
        pass


def test_the_store_id_is_created_once_and_kept(tmp_path: Path) -> None:
    store_id = load_store_id(tmp_path)

    assert len(store_id) == 32 and int(store_id, 16) >= 0
    assert load_store_id(tmp_path) == store_id
    assert (tmp_path / STORE_ID_FILE).read_text().strip() == store_id


def test_a_damaged_store_id_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / STORE_ID_FILE).write_text("not-an-id\n")

    with pytest.raises(StartupRefusedError, match=f"{tmp_path / STORE_ID_FILE} does not hold"):
        load_store_id(tmp_path)


def test_the_worker_identity_carries_the_store_id() -> None:
    identity = worker_identity(OURS)

    assert identity.startswith(f"{os.getpid()}@")
    assert store_id_of(identity) == OURS
    assert store_id_of("1234@host") is None
    assert store_id_of(f"1@h store={OURS}x") is None


def poller(identity: str, idle: timedelta) -> PollerInfo:
    seen = Timestamp()
    seen.FromDatetime(NOW - idle)
    return PollerInfo(identity=identity, last_access_time=seen)


def test_a_recent_poller_of_another_store_conflicts() -> None:
    theirs = poller(f"9@other store={THEIRS}", timedelta(seconds=65))

    found = conflicting_poller([poller("1@h", timedelta(0)), theirs], OURS, NOW)

    assert found == (theirs, timedelta(seconds=65))


@pytest.mark.parametrize(
    "identity, idle",
    [
        # Our own earlier process, however recent: a restart must never wait for it.
        (f"1@h orchestrator store={OURS}", timedelta(0)),
        # Another store's orchestrator that stopped polling long enough ago.
        (f"9@other orchestrator store={THEIRS}", POLLER_LIVENESS + timedelta(seconds=1)),
        # Not an orchestrator of any store.
        ("1@h", timedelta(0)),
    ],
)
def test_pollers_that_do_not_conflict(identity: str, idle: timedelta) -> None:
    assert conflicting_poller([poller(identity, idle)], OURS, NOW) is None
