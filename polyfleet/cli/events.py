"""``polyfleet events publish|list``: the CloudEvents workflows emit and listen to."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from polyfleet.cli import api
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK, CliError
from polyfleet.cli.output import Console, format_table, format_timestamp, to_json
from polyfleet.cloud_events import EventFormatError, event_from_data
from polyfleet.structs import value_to_data


def _event(args: argparse.Namespace) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": args.id or str(uuid.uuid4()),
        "source": args.source,
        "type": args.type,
    }
    if args.subject:
        event["subject"] = args.subject
    if args.data is not None:
        try:
            event["data"] = json.loads(args.data)
        except json.JSONDecodeError as err:
            raise CliError(f"--data is not JSON: {err}") from None
    for item in args.extension or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--extension {item!r}: expected NAME=VALUE")
        event[name] = value
    return event


def cmd_events_publish(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet events publish``: publish one event (it wakes the listening workflows)."""
    try:
        message = event_from_data(_event(args))
    except EventFormatError as err:
        raise CliError(str(err)) from None

    async def publish() -> int:
        async with api.connect(api_address(args)) as client:
            response = await client.events.publish(message)
        if args.output == "json":
            print(to_json(response), file=console.out)
        else:
            record = response.record
            state = "published" if response.published else "already published"
            print(f"event {record.event.id} {state} (sequence {record.sequence})", file=console.out)
        return EXIT_OK

    return asyncio.run(publish())


def cmd_events_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet events list``: stored events in publish order."""

    async def listing() -> int:
        async with api.connect(api_address(args)) as client:
            response = await client.events.list(
                after_sequence=args.after,
                page_size=args.limit,
                type=args.type or "",
                source=args.source or "",
                execution_id=args.execution or "",
            )
        if args.output == "json":
            print(to_json(response), file=console.out)
            return EXIT_OK
        rows = [
            [
                str(r.sequence),
                format_timestamp(r.receive_time),
                r.event.type,
                r.event.source,
                r.event.id,
                json.dumps(value_to_data(r.event.data)) if r.event.HasField("data") else "",
            ]
            for r in response.events
        ]
        headers = ["SEQ", "RECEIVED", "TYPE", "SOURCE", "ID", "DATA"]
        print(format_table(headers, rows), file=console.out)
        return EXIT_OK

    return asyncio.run(listing())
