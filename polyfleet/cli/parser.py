"""The argparse command tree of ``polyfleet``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from polyfleet.cli import (
    commands,
    dev,
    events,
    executions,
    fleet_status,
    run,
    schedules,
    tokens,
    version,
)
from polyfleet.cli.output import Console, parse_phase, phase_choices
from polyfleet.config import DEFAULT_HTTP_ADDRESS
from polyfleet.durations import parse_duration
from polyfleet.roles import Role, parse_role

Handler = Callable[[argparse.Namespace, Console], int]

_DESCRIPTION = """\
polyfleet runs AI agent executions and workflow executions (Serverless Workflow
DSL 1.0) durably on a Temporal worker fleet.

Commands talk to the orchestrator's gRPC API at --address (default: the
POLYFLEET_API_ADDRESS environment variable, else 127.0.0.1:7234).
"""

_EPILOG = """\
exit codes: 0 success, 1 the execution ended FAILED or CANCELLED,
            2 usage, input or API error, 130 interrupted

examples:
  polyfleet dev                                   # local Temporal + orchestrator + runner
  polyfleet apply -f examples/agents/assistant.yaml
  polyfleet run agent assistant --message "What is polyfleet?" --follow
  polyfleet run agent assistant --message "What's the weather in Paris?" --wait
  polyfleet apply -f examples/workflows/
  polyfleet run workflow order-flow --input '{"customer": "Ada"}' --follow
  polyfleet executions list --phase running
  polyfleet executions cancel ID --wait
  polyfleet fleet status                          # queues, pollers, backlogs, stuck?
  polyfleet demo                                  # all of the above, then stop
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    _port(port)
    return text


def _phase(text: str) -> int:
    try:
        return int(parse_phase(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output(parser: argparse.ArgumentParser, *choices: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=choices,
        default="text",
        help="output format (default: text)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the ``polyfleet`` argument parser.

    Returns:
        A parser whose parsed namespace carries a ``handler`` (see :data:`Handler`).

    """
    parser = argparse.ArgumentParser(
        prog="polyfleet",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version.package_version()}"
    )
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="polyfleet API address (overrides POLYFLEET_API_ADDRESS)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_apply(sub)
    _add_run(sub)
    _add_executions(sub)
    _add_agents(sub)
    _add_workflows(sub)
    _add_fleet(sub)
    _add_schedules(sub)
    _add_events(sub)
    _add_dev(sub)
    _add_demo(sub)
    _add_tokens(sub)
    _add_version(sub)
    return parser


def _add_apply(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apply = sub.add_parser(
        "apply",
        help="create or update agents and workflows from YAML manifests",
        description="Validate every manifest (and every workflow document) first, then apply "
        "each one, create or replace by name: agents first, then workflows, so a workflow's "
        "`call: agent` finds its agent. A manifest error stores nothing.",
    )
    apply.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="manifest file, directory of *.yaml files, or - for stdin (repeatable)",
    )
    apply.set_defaults(handler=commands.cmd_apply)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run_parser = sub.add_parser("run", help="start an execution")
    kinds = run_parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    agent = kinds.add_parser(
        "agent",
        help="run an agent on a message",
        description="Start an agent execution. Prints its ID; with --follow streams its "
        "progress until it ends; with --wait waits for it (ExecuteAgent) and prints only the "
        "answer. Exit code 1 if it FAILED or was CANCELLED; 2 if --wait timed out (the "
        "execution keeps running).",
    )
    agent.add_argument("name", metavar="NAME", help="agent name")
    agent.add_argument("-m", "--message", required=True, help="the user message")
    agent.add_argument("--session", metavar="ID", help="continue this session")
    agent.add_argument(
        "--priority", type=_priority, metavar="1-5", help="1 is the most urgent (default 3)"
    )
    agent.add_argument(
        "--request-id", metavar="KEY", help="idempotency key: a retry returns the original"
    )
    agent.add_argument(
        "--strategy",
        choices=("reject", "enqueue", "interrupt"),
        help="when the session already has an execution in flight (default: enqueue)",
    )
    _add_modes(
        agent, "wait for the end in one call and print the answer (structured output as JSON)"
    )
    agent.set_defaults(handler=run.cmd_run_agent)

    workflow = kinds.add_parser(
        "workflow",
        help="run a workflow on an input",
        description="Start a workflow execution. Prints its ID; with --follow streams each "
        "task's progress until it ends, then the output; with --wait waits for it "
        "(ExecuteWorkflow) and prints only the output, as JSON. Exit code 1 if it FAILED or "
        "was CANCELLED; 2 if --wait timed out (the execution keeps running).",
    )
    workflow.add_argument("name", metavar="NAME", help="workflow name")
    workflow.add_argument(
        "-i",
        "--input",
        metavar="JSON|@FILE",
        help="the workflow input, a JSON object: inline, @FILE to read a file, @- for stdin",
    )
    _add_modes(workflow, "wait for the end in one call and print the output as JSON")
    workflow.set_defaults(handler=run.cmd_run_workflow)


def _add_modes(parser: argparse.ArgumentParser, wait_help: str) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "-f", "--follow", action="store_true", help="stream progress until the execution ends"
    )
    mode.add_argument("-w", "--wait", action="store_true", help=wait_help)
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="with --wait: how long the server waits (default: the server's, 60; at most 300)",
    )
    _output(parser, "text", "json")


def _add_executions(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    executions_parser = sub.add_parser(
        "executions",
        aliases=["execution"],
        help="inspect, follow and cancel agent and workflow executions",
        description="get, watch and cancel take any execution ID: aex-… (agent) or wex-… "
        "(workflow). list shows agent executions, or workflow executions with --workflow NAME "
        "or --kind workflow.",
    )
    actions = executions_parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    get = actions.add_parser("get", help="show one execution")
    get.add_argument("id", metavar="ID")
    _output(get, "text", "json")
    get.set_defaults(handler=executions.cmd_executions_get)

    listing = actions.add_parser("list", help="list executions of one kind, newest first")
    listing.add_argument(
        "--kind",
        choices=("agent", "workflow"),
        help="agent (default) or workflow executions; --workflow implies workflow",
    )
    listing.add_argument("--agent", help="only executions of this agent")
    listing.add_argument("--session", metavar="ID", help="only executions of this session")
    listing.add_argument("--workflow", metavar="NAME", help="only executions of this workflow")
    listing.add_argument(
        "--phase",
        type=_phase,
        metavar="PHASE",
        help=f"only executions in this phase ({', '.join(phase_choices())})",
    )
    listing.add_argument(
        "--created-after", type=_timestamp, metavar="TIME", help="ISO 8601, e.g. 2026-11-21T08:00Z"
    )
    listing.add_argument("--created-before", type=_timestamp, metavar="TIME", help="ISO 8601")
    listing.add_argument(
        "--label",
        type=_label,
        action="append",
        metavar="KEY=VALUE",
        help="only executions with this label (repeatable)",
    )
    listing.add_argument("--page-size", type=_positive_int, metavar="N")
    listing.add_argument("--page-token", metavar="TOKEN", help="from a previous page")
    _output(listing, "text", "json")
    listing.set_defaults(handler=executions.cmd_executions_list)

    watch = actions.add_parser("watch", help="stream an execution's progress until it ends")
    watch.add_argument("id", metavar="ID")
    watch.add_argument(
        "--after",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="only events after sequence number N (default: replay all)",
    )
    watch.set_defaults(handler=executions.cmd_executions_watch)

    changes = actions.add_parser(
        "changes",
        help="stream every execution's changes (created, phase changed) as they happen",
        description="One line per change: SEQUENCE TYPE ID agent/NAME|workflow/NAME PHASE. "
        "Runs until interrupted, or until --limit changes. RESET means changes after --after "
        "are no longer held by the orchestrator: list the executions again.",
    )
    changes.add_argument(
        "--after",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="only changes after sequence number N (default: from now on)",
    )
    changes.add_argument("--limit", type=_positive_int, metavar="N", help="exit after N changes")
    _output(changes, "text", "json")
    changes.set_defaults(handler=executions.cmd_executions_changes)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a running execution",
        description="Cancel an execution and print its phase. The runner stops within "
        "seconds; --wait waits until the execution has ended.",
    )
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument(
        "-w", "--wait", action="store_true", help="wait until the execution has ended"
    )
    cancel.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="with --wait: give up after this long (default: 30)",
    )
    _output(cancel, "text", "json")
    cancel.set_defaults(handler=executions.cmd_executions_cancel)


def _add_agents(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = sub.add_parser("agents", aliases=["agent"], help="inspect agent definitions")
    actions = agents.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list agents")
    _output(listing, "text", "json")
    listing.set_defaults(handler=commands.cmd_agents_list)

    get = actions.add_parser("get", help="show one agent (-o yaml prints a manifest)")
    get.add_argument("name", metavar="NAME", help="agent name or ID")
    _output(get, "text", "json", "yaml")
    get.set_defaults(handler=commands.cmd_agents_get)


def _add_workflows(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workflows = sub.add_parser(
        "workflows", aliases=["workflow"], help="inspect workflow definitions"
    )
    actions = workflows.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list workflows")
    _output(listing, "text", "json")
    listing.set_defaults(handler=commands.cmd_workflows_list)

    get = actions.add_parser(
        "get", help="show one workflow and its document (-o yaml prints a manifest)"
    )
    get.add_argument("name", metavar="NAME", help="workflow name or ID")
    _output(get, "text", "json", "yaml")
    get.set_defaults(handler=commands.cmd_workflows_get)


def _add_fleet(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = sub.add_parser("fleet", help="the state of the worker fleet")
    actions = fleet.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="task queues with their pollers and backlogs, executions by phase, stuck ones",
        description="For every task queue in use (the orchestrator and runner queues and "
        "every runnerQueue of an agent, a workflow or an unfinished execution): the workers "
        "polling it, its backlog and the age of its oldest task, tasks added and dispatched "
        "per second (Temporal's DescribeTaskQueue); the executions of each phase; and a "
        "warning for RUNNING executions without any event for longer than --stuck-after.",
    )
    status.add_argument(
        "--stuck-after",
        type=_positive_duration,
        metavar="DURATION",
        help="warn of RUNNING executions silent this long, e.g. 5m (default: the "
        "orchestrator's POLYFLEET_STUCK_AFTER, 10m)",
    )
    _output(status, "text", "json")
    status.set_defaults(handler=fleet_status.cmd_fleet_status)


def _add_schedules(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schedules",
        aliases=["schedule"],
        help="the schedules of workflows (a document's top-level 'schedule')",
        description="A workflow whose document has a top-level 'schedule' (every, cron or "
        "after) gets a Temporal Schedule when applied; these commands list, pause, resume "
        "and delete them (docs/dsl.md, 'schedule').",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list schedules")
    _output(listing, "text", "json")
    listing.set_defaults(handler=schedules.cmd_schedules_list)

    get = actions.add_parser("get", help="show one schedule, its next runs and recent actions")
    get.add_argument("workflow", metavar="WORKFLOW", help="workflow name")
    _output(get, "text", "json")
    get.set_defaults(handler=schedules.cmd_schedules_get)

    for name, handler, text in (
        ("pause", schedules.cmd_schedules_pause, "stop a schedule starting executions"),
        ("resume", schedules.cmd_schedules_resume, "let a paused schedule start executions"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("workflow", metavar="WORKFLOW", help="workflow name")
        action.add_argument(
            "--reason", default="", help="why, kept in the schedule's note with your name"
        )
        _output(action, "text", "json")
        action.set_defaults(handler=handler)

    delete = actions.add_parser(
        "delete",
        help="delete a schedule (applying the workflow again recreates it)",
    )
    delete.add_argument("workflow", metavar="WORKFLOW", help="workflow name")
    _output(delete, "text", "json")
    delete.set_defaults(handler=schedules.cmd_schedules_delete)


def _add_events(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "events",
        aliases=["event"],
        help="publish and list CloudEvents (what workflows' emit and listen use)",
        description="Events are CloudEvents 1.0; a published event wakes the workflow "
        "executions whose 'listen' tasks wait for it (docs/dsl.md, 'emit and listen').",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    publish = actions.add_parser("publish", help="publish one event (needs the operator role)")
    publish.add_argument("--type", required=True, help="the event's type, e.g. com.example.paid")
    publish.add_argument("--source", required=True, help="a URI-reference, e.g. /billing")
    publish.add_argument("--id", default="", help="unique per source (default: a new UUID)")
    publish.add_argument("--subject", default="", help="the event's subject")
    publish.add_argument("--data", metavar="JSON", help="the event's data, any JSON value")
    publish.add_argument(
        "--extension",
        action="append",
        metavar="NAME=VALUE",
        help="an extension attribute (lowercase letters and digits); repeatable",
    )
    _output(publish, "text", "json")
    publish.set_defaults(handler=events.cmd_events_publish)

    listing = actions.add_parser("list", help="stored events, oldest first")
    listing.add_argument("--type", help="only this type")
    listing.add_argument("--source", help="only this source")
    listing.add_argument("--execution", metavar="ID", help="only events this execution emitted")
    listing.add_argument(
        "--after", type=_non_negative_int, default=0, metavar="SEQ", help="after this sequence"
    )
    listing.add_argument(
        "--limit", type=_positive_int, default=100, metavar="N", help="at most N (default 100)"
    )
    _output(listing, "text", "json")
    listing.set_defaults(handler=events.cmd_events_list)


def _add_dev(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev_parser = sub.add_parser(
        "dev",
        help="run a local fleet (Temporal dev server, orchestrator, runners) until Ctrl-C",
        description="Start the Temporal dev server (with its UI), the orchestrator and N "
        "runners as child processes and keep them running until SIGINT/SIGTERM. State lives "
        "in the data directory, so a restart loses nothing.",
    )
    dev_parser.add_argument(
        "--runners",
        type=_non_negative_int,
        default=1,
        metavar="N",
        help="runner processes; 0 runs Temporal and the orchestrator only, e.g. to test a "
        "runner written in another language against them",
    )
    dev_parser.add_argument(
        "--data-dir",
        default=str(dev.DEFAULT_DEV_DATA_DIR),
        metavar="DIR",
        help=f"state and logs (default: {dev.DEFAULT_DEV_DATA_DIR})",
    )
    dev_parser.add_argument(
        "--temporal-port", type=_port, default=7233, metavar="PORT", help="default: 7233"
    )
    dev_parser.add_argument(
        "--ui-port", type=_port, default=8233, metavar="PORT", help="Temporal UI, default: 8233"
    )
    dev_parser.add_argument(
        "--http-address",
        type=_host_port,
        metavar="HOST:PORT",
        help="the HTTP API and dashboard (default: POLYFLEET_HTTP_ADDRESS, else "
        f"{DEFAULT_HTTP_ADDRESS}); POLYFLEET_HTTP_ENABLED=false serves neither",
    )
    dev_parser.add_argument(
        "--secure",
        action="store_true",
        help="serve the API with TLS and bearer tokens: a dev CA, a certificate for "
        "127.0.0.1/::1/localhost and one token per role are kept in DATA_DIR/credentials; "
        "prints how to connect",
    )
    dev_parser.set_defaults(handler=dev.cmd_dev)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="start a throwaway fleet, run the example agent and workflow, stop everything",
        description="Start a fleet on free ports with one runner, its API served with TLS "
        "and bearer tokens (dev credentials in DATA_DIR/credentials), apply the example agent, "
        "run it on each message in turn, in one session, following the progress live (tool "
        "calls, streamed tokens, usage); then serve examples/http/ on 127.0.0.1 and run the "
        "example workflow order-flow, whose call:http task reads the prices there and whose "
        "call:agent task asks the assistant, following each task live; then stop every "
        "process. Exits 0 only if every execution COMPLETED.",
    )
    demo.add_argument(
        "--file",
        metavar="FILE",
        help=f"agent manifest (default: {dev.default_demo_manifest()})",
    )
    demo.add_argument("--agent", help=f"agent to run (default: {dev.DEMO_AGENT})")
    demo.add_argument(
        "-m",
        "--message",
        dest="messages",
        action="append",
        metavar="TEXT",
        help="a user message; repeat for more turns of the same session (default: "
        + ", then ".join(repr(m) for m in dev.DEMO_MESSAGES)
        + ")",
    )
    demo.add_argument(
        "--no-workflow",
        action="store_true",
        help=f"talk to the agent only; skip the example workflow ({dev.DEV_WORKFLOW})",
    )
    demo.add_argument(
        "--data-dir", metavar="DIR", help="keep state and logs here (default: a temporary dir)"
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="give up after this long (default: 180)",
    )
    demo.set_defaults(handler=dev.cmd_demo)


def _add_tokens(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens_parser = sub.add_parser(
        "tokens",
        help="make API bearer tokens and their hashes for POLYFLEET_AUTH_TOKENS_FILE",
        description="The orchestrator accepts a bearer token whose SHA-256 is in its token "
        "file (POLYFLEET_AUTH_TOKENS_FILE), with the entry's subject and role. These "
        "commands work offline; the orchestrator re-reads the file when it changes.",
    )
    actions = tokens_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a new token: print it once on stdout, its entry to --file or stderr",
        description="Make a random token and print it, alone, on stdout: it is shown only "
        "this once. Its entry (subject, role, hash) is appended to --file (created with "
        "mode 0600), or printed on stderr to paste into the token file.",
    )
    create.add_argument("--subject", required=True, help="who uses the token (e.g. ci-bot)")
    create.add_argument(
        "--role",
        required=True,
        type=_role,
        metavar="ROLE",
        help=f"what the token may do: {', '.join(r.value for r in Role)}",
    )
    create.add_argument("--file", metavar="PATH", help="token file to add the entry to")
    create.set_defaults(handler=tokens.cmd_tokens_create)
    hashing = actions.add_parser(
        "hash",
        help="print the sha256: hash of a token read from stdin",
        description="Read a token from the first line of stdin and print its hash as the "
        "token file holds it, e.g. for a token made by another tool.",
    )
    hashing.set_defaults(handler=tokens.cmd_tokens_hash)


def _add_version(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    version_parser = sub.add_parser(
        "version",
        help="print polyfleet's version (-o json: also Python's, temporalio's, grpc's)",
        description="Print the installed polyfleet's version, as its package metadata has "
        "it; with -o json also the versions of Python, temporalio, grpcio and protobuf. "
        "Works offline, e.g. in the container image: `docker run IMAGE polyfleet version`.",
    )
    _output(version_parser, "text", "json")
    version_parser.set_defaults(handler=version.cmd_version)


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be a duration above 0, got {text}")
    return value


def _priority(text: str) -> int:
    value = _positive_int(text)
    if value > 5:
        raise argparse.ArgumentTypeError(f"{text} is not a priority from 1 to 5")
    return value


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value
