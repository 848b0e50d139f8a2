"""The processes of `run: shell` and `run: script`: start, bound, capture, kill.

A process runs in its own process group, in a fresh empty working directory, with only
the environment the document gives plus a minimal ``PATH`` (never the host's variables,
which hold its credentials), reading the document's `stdin` (or none: closed). Its stdout
and stderr are captured up to a byte limit; past it, or past the time limit, the whole
group is killed. Cancelling the coroutine (the task was cancelled or timed out) kills the
group too, and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The ``PATH`` of every process unless the document's `environment` sets one.
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ProcessResult:
    """How a process ended and what it wrote (decoded as UTF-8, invalid bytes replaced)."""

    code: int
    stdout: str
    stderr: str


class ProcessTimeoutError(Exception):
    """The process ran past its time limit and was killed."""


class ProcessOutputError(Exception):
    """The process wrote more than the limit to ``stream`` and was killed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


def child_environment(given: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a process: ``given`` over a minimal ``PATH``."""
    return {"PATH": MINIMAL_PATH, **given}


async def run_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    seconds: float,
    max_output_bytes: int,
    stdin: bytes | None = None,
    files: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Run ``argv`` to its end.

    Args:
        argv: The program and its arguments; relative paths are in the working directory.
        env: The whole environment of the process.
        seconds: Its time limit.
        max_output_bytes: The limit of each of stdout and stderr.
        stdin: What it reads on stdin; None: stdin is closed.
        files: Files written into its working directory first (name → text), e.g. a script.

    Raises:
        ProcessTimeoutError: It ran longer than ``seconds``.
        ProcessOutputError: It wrote more than ``max_output_bytes`` to stdout or stderr.
        OSError: It could not be started (no such program, ...).
        asyncio.CancelledError: The caller was cancelled; the process group was killed.
    """
    with tempfile.TemporaryDirectory(prefix="polyfleet-run-") as workdir:
        for name, text in (files or {}).items():
            # A script of at most a document's size: not worth a thread.
            Path(workdir, name).write_text(text, encoding="utf-8")  # noqa: ASYNC240
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=workdir,
            start_new_session=True,
        )
        assert process.stdout is not None and process.stderr is not None
        reads = asyncio.gather(
            _read(process.stdout, "stdout", max_output_bytes),
            _read(process.stderr, "stderr", max_output_bytes),
            _write(process.stdin, stdin),
        )
        try:
            try:
                stdout, stderr, _ = await asyncio.wait_for(reads, seconds)
            except TimeoutError:
                raise ProcessTimeoutError() from None
            code = await process.wait()
        finally:
            await asyncio.shield(_end(process, reads))
    return ProcessResult(code, _text(stdout), _text(stderr))


async def _read(stream: asyncio.StreamReader, name: str, limit: int) -> bytes:
    data = bytearray()
    while chunk := await stream.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ProcessOutputError(name)
    return bytes(data)


async def _write(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    # Written while stdout and stderr are read: a process that answers as it reads must not
    # block on a full pipe while we block on its stdin.
    if stream is None or data is None:
        return
    # A process that exits (or closes stdin) without reading it all is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
    stream.close()


async def _end(process: asyncio.subprocess.Process, reads: asyncio.Future[Any]) -> None:
    # The whole group, always: a shell's children (`sleep` in `sh -c`, a background job)
    # must not outlive the task.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        await process.wait()
    reads.cancel()
    with contextlib.suppress(asyncio.CancelledError, ProcessOutputError):
        await reads


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
