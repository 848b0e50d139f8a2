"""`call: grpc`: one unary method of a gRPC service, JSON arguments in, proto3 JSON out.

``with: {proto: {endpoint}, service: {name, host, port}, method, arguments}``. The service's
descriptors come from the `proto` file (an http(s) URL, a `file://` URL or an absolute path
on the runner, compiled on the runner with grpcio-tools' protoc, once per run; a file's own
directory is its import path) or, without `proto`, from the server's reflection service
(grpc.reflection.v1alpha). `arguments` becomes the request through protobuf's JSON mapping
(unknown fields are an error); the response is the task's output in proto3 JSON (lowerCamelCase
names, 64-bit integers as strings, default values omitted). The channel is plaintext unless
the port is 443 or the host is given as `https://name`; then TLS with the system's roots.
A failed call is a communication error carrying the gRPC status name and an HTTP-like status.
"""

from __future__ import annotations

import asyncio
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import COMMUNICATION, EXPRESSION, RUNTIME, VALIDATION, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import CallFunction, StepResult
from polyfleet.dsl.runtime import Runtime, TaskCall
from polyfleet.dsl.tasks.openapi import check_resource, read_resource, resource_uri
from polyfleet.error_details import http_status

_KEYS = frozenset({"proto", "service", "method", "arguments"})
_SERVICE_KEYS = frozenset({"name", "host", "port"})
_REFLECTION_TIMEOUT = 10.0

# Descriptor pools of compiled proto files per run, by URI.
_POOLS: weakref.WeakKeyDictionary[Runtime, dict[str, DescriptorPool]] = weakref.WeakKeyDictionary()


def check_grpc(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    """The `with` of `call: grpc`."""
    c.keys(p, args, _KEYS, required=("service", "method"))
    if "proto" in args:
        check_resource(c, f"{p}/proto", args["proto"], variables)
    if "service" in args:
        service = c.members(
            f"{p}/service",
            args["service"],
            "'service'",
            _SERVICE_KEYS,
            required=("name", "host"),
            unsupported=("authentication",),
        )
        for key in ("name", "host"):
            if service is not None and key in service:
                if c.string(f"{p}/service/{key}", service[key], f"'{key}'"):
                    c.template(f"{p}/service/{key}", service[key], variables)
        port = (service or {}).get("port")
        if port is not None and not is_expression(port):
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                c.add(f"{p}/service/port", "'port' must be an integer from 1 to 65535")
        elif port is not None:
            c.template(f"{p}/service/port", port, variables)
    if "method" in args and c.string(f"{p}/method", args["method"], "'method'"):
        c.template(f"{p}/method", args["method"], variables)
    if "arguments" in args:
        value = args["arguments"]
        if not (isinstance(value, Mapping) or is_expression(value)):
            c.add(f"{p}/arguments", "'arguments' must be an object or an expression")
        c.template(f"{p}/arguments", value, variables)


async def call_grpc(rt: Runtime, call: TaskCall) -> StepResult:
    """Call the method; the output is the response message as proto3 JSON."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    service = rt.template(args["service"], call.input, variables)
    name, host = str(service["name"]), str(service["host"])
    method_name = str(rt.template(args["method"], call.input, variables))
    arguments = rt.template(args.get("arguments") or {}, call.input, variables)
    if not isinstance(arguments, Mapping):
        raise WorkflowError(
            EXPRESSION, 400, title="Invalid arguments", detail="'arguments' must be an object"
        )
    tls = host.startswith("https://") or service.get("port") == 443
    host = host.removeprefix("https://").removeprefix("http://")
    target = f"{host}:{service.get('port') or (443 if tls else 80)}"
    where = f"{name}/{method_name} at {target}"
    if "proto" in args:
        pool = await _compiled(rt, resource_uri(rt, args["proto"], call))
        method = _method(pool, name, method_name, where)
    else:
        method = await asyncio.to_thread(_reflect, target, tls, name, method_name, where)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        request = json_format.ParseDict(dict(arguments), request_class())
    except json_format.ParseError as exc:
        raise WorkflowError(
            VALIDATION, 400, title="Invalid gRPC arguments", detail=f"{where}: {exc}"
        ) from None
    channel = (
        grpc.aio.secure_channel(target, grpc.ssl_channel_credentials())
        if tls
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        rpc = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            response = await rpc(request)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            raise WorkflowError(
                COMMUNICATION,
                http_status(code),
                title=f"gRPC {code.name}",
                detail=f"{where} answered {code.name}: {exc.details() or ''}".strip(),
            ) from None
    return StepResult(json_format.MessageToDict(response))


def _method(pool: DescriptorPool, service: str, method: str, where: str) -> MethodDescriptor:
    try:
        found = pool.FindServiceByName(service).FindMethodByName(method)
    except KeyError:
        found = None
    if found is None:
        raise WorkflowError(
            RUNTIME, 404, title="Unknown gRPC method", detail=f"{where}: no such service method"
        )
    if found.client_streaming or found.server_streaming:
        raise WorkflowError(
            RUNTIME, 400, title="Unsupported gRPC method", detail=f"{where}: only unary methods"
        )
    return found


def _reflect(target: str, tls: bool, service: str, method: str, where: str) -> MethodDescriptor:
    """The method's descriptor from the server's reflection service (blocking)."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if tls
        else grpc.insecure_channel(target)
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=_REFLECTION_TIMEOUT)
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        return _method(pool, service, method, where)
    except grpc.FutureTimeoutError:
        raise WorkflowError(
            COMMUNICATION, 503, title="gRPC server unreachable", detail=f"{where}: not reachable"
        ) from None
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        raise WorkflowError(
            COMMUNICATION,
            http_status(code),
            title="gRPC reflection failed",
            detail=f"{where}: the server's reflection answered {code.name} (give 'proto' instead)",
        ) from None
    finally:
        channel.close()


async def _compiled(rt: Runtime, uri: str) -> DescriptorPool:
    pools = _POOLS.setdefault(rt, {})
    if uri not in pools:
        text, base = await read_resource(rt, uri, "proto file")
        pools[uri] = await asyncio.to_thread(_compile, text, base, uri)
    return pools[uri]


def _compile(text: str, base: str, uri: str) -> DescriptorPool:
    """A pool holding the proto file and its imports, compiled with protoc (blocking)."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise WorkflowError(
            RUNTIME,
            500,
            title="Cannot compile proto files",
            detail="grpcio-tools is not installed on this runner; omit 'proto' to use reflection",
        ) from None
    includes = [str(Path(protoc.__file__).parent / "_proto")]
    parts = urlsplit(base)
    if parts.scheme == "file":
        includes.insert(0, str(Path(parts.path).parent))
    with tempfile.TemporaryDirectory() as scratch:
        name = Path(parts.path).name or "service.proto"
        source = Path(scratch) / name
        source.write_text(text, encoding="utf-8")
        out = Path(scratch) / "descriptors.pb"
        code = protoc.main(
            [
                "protoc",
                f"-I{scratch}",
                *(f"-I{include}" for include in includes),
                f"--descriptor_set_out={out}",
                "--include_imports",
                str(source),
            ]
        )
        if code != 0 or not out.exists():
            raise WorkflowError(
                RUNTIME,
                400,
                title="Invalid proto file",
                detail=f"{uri} does not compile (protoc exit status {code})",
            )
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = DescriptorPool()
    for proto in files.file:
        pool.AddSerializedFile(proto.SerializeToString())
    return pool


GRPC = CallFunction("grpc", check_grpc, call_grpc)
