"""Workflow activations without the payload walks that cannot change anything.

Before a workflow activation runs, temporalio walks every payload in it three times: to
decode external-storage references with the payload codec, to retrieve externally stored
payloads, and to decode payloads with the codec. Every completion is walked three times the
same way to encode. It does so whether or not the data converter has a payload codec or
external storage (temporalio 1.35): each walk is a coroutine per nested message, and each
repeated payload field is rewritten with copies of its own payloads, because the data
converter's no-op hands back a new list. The orchestrator configures neither, so the six walks
change nothing, and they were a sixth of its CPU per agent execution (docs/benchmarks.md, "The
fleet against raw Temporal").

:func:`skip_noop_payload_walks` makes temporalio's two entry points return at once for a data
converter with neither, and call temporalio's own walks otherwise. What the walks would also
have caught is a payload stored externally by another client: without external storage
temporalio fails that workflow task with its own error, and now the payload converter fails
it (the payload's encoding is not one it knows).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import temporalio.bridge.worker as bridge_worker
from temporalio.converter import DataConverter

logger = logging.getLogger(__name__)

# The parameters of the two entry points this module knows; another temporalio that changes
# them keeps its own walks (and the test of this module says so).
_DECODE_PARAMETERS = ("activation", "data_converter", "decode_headers", "storage_concurrency_limit")
_ENCODE_PARAMETERS = ("completion", "data_converter", "encode_headers", "storage_concurrency_limit")
_MARK = "__polyfleet_skips_noop_walks__"

_Walk = Callable[..., Awaitable[Any]]


def walks_have_effect(data_converter: DataConverter) -> bool:
    """Whether temporalio's payload walks can change a payload for ``data_converter``."""
    return (
        data_converter.payload_codec is not None
        or getattr(data_converter, "external_storage", None) is not None
    )


def skip_noop_payload_walks() -> bool:
    """Make temporalio skip its activation payload walks where they change nothing.

    Idempotent, and process-wide: every workflow worker of the process is concerned, and
    each still walks payloads for a data converter with a codec or external storage.

    Returns:
        True when the walks are skipped; False when this temporalio's entry points are not
        the ones this module knows (its walks then run as before).

    """
    decode, encode = bridge_worker.decode_activation, bridge_worker.encode_completion
    if getattr(decode, _MARK, False) and getattr(encode, _MARK, False):
        return True
    try:
        # What the walks return (temporalio's, not public): here since external storage.
        from temporalio.converter._extstore import StorageOperationMetrics
    except ImportError:
        known = False
    else:
        known = _takes(decode, _DECODE_PARAMETERS) and _takes(encode, _ENCODE_PARAMETERS)
    if not known:
        logger.info("temporalio's activation payload walks are not the ones known; kept")
        return False

    def skipping(walk: _Walk) -> _Walk:
        @functools.wraps(walk)
        async def walk_if_effective(
            message: Any, data_converter: DataConverter, *args: Any, **kwargs: Any
        ) -> Any:
            if walks_have_effect(data_converter):
                return await walk(message, data_converter, *args, **kwargs)
            # What the walks report when nothing was stored or retrieved externally.
            return StorageOperationMetrics()

        setattr(walk_if_effective, _MARK, True)
        return walk_if_effective

    bridge_worker.decode_activation = skipping(decode)  # type: ignore[assignment]
    bridge_worker.encode_completion = skipping(encode)  # type: ignore[assignment]
    return True


def _takes(function: Callable[..., Any], parameters: tuple[str, ...]) -> bool:
    try:
        found = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    return found == parameters
