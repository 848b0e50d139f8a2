"""The task types this runtime runs, one module each; importing this package registers them.

A module here holds one task type's validation beside its execution (`http.py`: what a
`call: http` may say, and the request it sends) and exposes it as a
:class:`~polyfleet.dsl.registry.TaskType` or, for `call:`, a
:class:`~polyfleet.dsl.registry.CallFunction`. Adding one is that module and a line below.
"""

from polyfleet.dsl.registry import register
from polyfleet.dsl.tasks.agent import AGENT
from polyfleet.dsl.tasks.basic import RAISE, SET, SWITCH, WAIT
from polyfleet.dsl.tasks.call import CALL
from polyfleet.dsl.tasks.composite import DO, FOR
from polyfleet.dsl.tasks.events import EMIT, LISTEN
from polyfleet.dsl.tasks.fork import FORK
from polyfleet.dsl.tasks.grpc_call import GRPC
from polyfleet.dsl.tasks.http import HTTP
from polyfleet.dsl.tasks.mcp_call import MCP
from polyfleet.dsl.tasks.openapi import OPENAPI
from polyfleet.dsl.tasks.run import RUN
from polyfleet.dsl.tasks.try_catch import TRY

# Order is precedence: a task naming two types is the first one's (see registry.register).
register(FOR, FORK, TRY, CALL, SET, SWITCH, WAIT, RAISE, RUN, DO)
register(HTTP, AGENT)
register(OPENAPI, GRPC, MCP)
register(EMIT, LISTEN)
