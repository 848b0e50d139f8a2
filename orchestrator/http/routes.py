"""The HTTP/JSON route table, read from the protos' ``google.api.http`` annotations.

Each annotated method of the served services becomes a :class:`HttpRoute`: an HTTP verb,
a path template (``/v1/agents/{agent.name}``, ``/v1/agentExecutions/{id}:cancel``) and a
body rule (``*``: the whole request; a field name: that field; empty: no body). Building
the request message follows Google's HTTP/JSON transcoding: the body is proto3 JSON, path
variables set (nested) fields, and query parameters fill the remaining fields (scalars,
enums by name or number, Timestamp/Duration strings, dotted names for nested fields, a
repeated field by repeating the parameter, ``labels.KEY=VALUE`` for a string map).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

# googleapis-common-protos ships no type stubs.
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

# Messages whose proto3 JSON form is a string (or a scalar): a query parameter sets them.
_STRING_LIKE = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
_BOOL = {"true": True, "false": False, "1": True, "0": False}
_VARIABLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}$")
# "Failed to parse X field: " prefixes json_format puts before a nested error.
_NESTED = re.compile(r"Failed to parse (\w+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')


class RequestError(ValueError):
    """A request that cannot become the method's message: a 400 naming the field.

    Attributes:
        field: The offending field (dotted, as the client spelled it), the parameter or
            header, or "" for the body as a whole.
        description: What is wrong with it.

    """

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}" if field else description)


@dataclass(frozen=True)
class PathTemplate:
    """A path template: literal and ``{field}`` segments, and an optional ``:verb``.

    Attributes:
        text: The template as annotated.
        segments: Each segment: a literal, or a variable as ``("field.path",)``.
        verb: The custom verb after the last segment (``cancel``), or "".

    """

    text: str
    segments: tuple[str | tuple[str], ...]
    verb: str

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        """Parse ``text``; only single-segment variables are supported (all the protos use).

        Raises:
            ValueError: The template uses syntax this gateway does not implement.
        """
        if not text.startswith("/"):
            raise ValueError(f"path template {text!r} does not start with /")
        last = text.rfind("/")
        path, verb = text, ""
        colon = text.find(":", last)
        if colon != -1 and "}" not in text[colon:]:
            path, verb = text[:colon], text[colon + 1 :]
        segments: list[str | tuple[str]] = []
        for part in path[1:].split("/"):
            match = _VARIABLE.match(part)
            if match:
                segments.append((match.group(1),))
            elif "{" in part or "}" in part or "*" in part or not part:
                raise ValueError(f"path template {text!r}: unsupported segment {part!r}")
            else:
                segments.append(part)
        return cls(text, tuple(segments), verb)

    @property
    def literal_prefix(self) -> str:
        """The path up to the first variable, e.g. ``/v1/agentExecutions``."""
        literal: list[str] = []
        for segment in self.segments:
            if isinstance(segment, tuple):
                break
            literal.append(segment)
        return "/" + "/".join(literal)

    def match(self, path: str) -> dict[str, str] | None:
        """The variables of ``path`` (URL-decoded), or None when it does not match."""
        if self.verb:
            suffix = f":{self.verb}"
            if not path.endswith(suffix):
                return None
            path = path[: -len(suffix)]
        parts = path[1:].split("/") if path.startswith("/") else []
        if len(parts) != len(self.segments):
            return None
        found: dict[str, str] = {}
        last = len(parts) - 1
        for index, (part, segment) in enumerate(zip(parts, self.segments, strict=True)):
            if isinstance(segment, tuple):
                # A variable is one non-empty segment; without a verb of its own the last
                # one must not swallow another route's ":verb".
                if not part or (not self.verb and ":" in part and index == last):
                    return None
                found[segment[0]] = unquote(part)
            elif part != segment:
                return None
        return found


@dataclass(frozen=True)
class HttpRoute:
    """One annotated method as an HTTP route.

    Attributes:
        method: The gRPC method.
        http_method: GET, POST, PUT, PATCH or DELETE.
        template: The path template.
        body: ``*``, a field name, or "" for no body.

    """

    method: MethodDescriptor
    http_method: str
    template: PathTemplate
    body: str

    @property
    def grpc_path(self) -> str:
        """The method's gRPC path, ``/package.Service/Method``."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        """Whether the method streams responses (served as SSE)."""
        return bool(self.method.server_streaming)

    @property
    def request_class(self) -> type[Message]:
        """The request message class."""
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        """The response message class."""
        return message_factory.GetMessageClass(self.method.output_type)

    def build_request(
        self,
        path_params: dict[str, str],
        query: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Message:
        """The request message from a matched request's path, query and body.

        Args:
            path_params: The template's variables, e.g. ``{"agent.name": "a"}``.
            query: Query parameters in order (a name may repeat).
            body: The raw body; empty means none.

        Returns:
            The request message.

        Raises:
            RequestError: Bad JSON, an unknown field or a value of the wrong type; the
                error names the field.

        """
        request = self.request_class()
        if self.body and body.strip():
            target = request if self.body == "*" else getattr(request, self.body)
            prefix = "" if self.body == "*" else self.body
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RequestError("", f"the body is not UTF-8: {err}") from None
            try:
                json_format.Parse(text, target, ignore_unknown_fields=False)
            except json_format.ParseError as err:
                raise RequestError(_error_field(str(err), prefix), str(err)) from None
        elif body.strip():
            raise RequestError("", f"{self.http_method} {self.template.text} takes no body")
        for name, value in path_params.items():
            _set(request, name, [value])
        grouped: dict[str, list[str]] = {}
        for name, value in query:
            grouped.setdefault(name, []).append(value)
        for name, values in grouped.items():
            _set(request, name, values)
        return request


def _error_field(message: str, prefix: str) -> str:
    """The dotted field a json_format error is about, e.g. ``execution.agentt``."""
    names = _NESTED.findall(message)
    missing = _NO_FIELD.search(message)
    if missing:
        names.append(missing.group(1))
    return ".".join(([prefix] if prefix else []) + names)


def _field(descriptor: Any, name: str) -> Any:
    """A field by its proto name or its JSON (lowerCamelCase) name."""
    found = descriptor.fields_by_name.get(name)
    if found is not None:
        return found
    return next((f for f in descriptor.fields if f.json_name == name), None)


def _is_map(field: Any) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    )


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _set(request: Message, name: str, values: Sequence[str]) -> None:
    """Set the field a path variable or query parameter ``name`` names.

    Raises:
        RequestError: Unknown field, a field a parameter cannot set, or a bad value.
    """
    descriptor: Any = request.DESCRIPTOR
    parts = name.split(".")
    tree: dict[str, Any] = {}
    node = tree
    for index, part in enumerate(parts):
        field = _field(descriptor, part)
        if field is None:
            raise RequestError(name, f"{descriptor.full_name} has no field named {part!r}")
        rest = parts[index + 1 :]
        if _is_map(field):
            _, value_field = field.message_type.fields
            if not rest or value_field.type == FieldDescriptor.TYPE_MESSAGE:
                raise RequestError(name, f"set a map entry as {name}.KEY=VALUE")
            if len(values) > 1:
                raise RequestError(name, "given more than once")
            node[field.name] = {".".join(rest): _scalar(value_field, values[0], name)}
            break
        if field.type == FieldDescriptor.TYPE_MESSAGE and (
            field.message_type.full_name not in _STRING_LIKE | _WRAPPERS
        ):
            if not rest or _is_repeated(field):
                raise RequestError(name, "a message field cannot be set by a parameter")
            descriptor = field.message_type
            node = node.setdefault(field.name, {})
            continue
        if rest:
            raise RequestError(name, f"{part} is not a message field")
        converted = [_scalar(field, value, name) for value in values]
        if _is_repeated(field):
            node[field.name] = converted
        elif len(converted) > 1:
            raise RequestError(name, "given more than once")
        else:
            node[field.name] = converted[0]
        break
    parsed = type(request)()
    try:
        json_format.ParseDict(tree, parsed, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise RequestError(name, _plain(str(err))) from None
    request.MergeFrom(parsed)


def _scalar(field: Any, value: str, name: str) -> Any:
    """A parameter's text as the JSON value json_format expects for ``field``."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL or (
        kind == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.full_name == "google.protobuf.BoolValue"
    ):
        if value.lower() not in _BOOL:
            raise RequestError(name, f"{value!r} is not a boolean (true or false)")
        return _BOOL[value.lower()]
    if kind == FieldDescriptor.TYPE_ENUM and value.lstrip("-").isdigit():
        return int(value)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(value)
        except ValueError:
            raise RequestError(name, f"{value!r} is not a number") from None
    return value


def _plain(message: str) -> str:
    """A json_format message without its "Failed to parse X field:" prefixes."""
    return _NESTED.sub("", message).rstrip(".") or message


class RouteNotFoundError(LookupError):
    """No route has this path."""


class MethodNotAllowedError(LookupError):
    """Routes have this path, but not for this HTTP method.

    Attributes:
        allowed: The HTTP methods the path has.

    """

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = sorted(set(allowed))
        super().__init__(f"allowed: {', '.join(self.allowed)}")


class RouteTable:
    """Every annotated method of some services, matched by HTTP method and path."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        # Templates with a ":verb" first: /v1/x/{id}:cancel before /v1/x/{id}.
        self.routes = sorted(routes, key=lambda route: not route.template.verb)

    @classmethod
    def from_services(cls, services: Iterable[Any]) -> RouteTable:
        """The routes of every method carrying a ``google.api.http`` option.

        Args:
            services: Service descriptors; methods without the option are not served.

        """
        routes: list[HttpRoute] = []
        for service in services:
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
                for binding in (rule, *rule.additional_bindings):
                    routes.append(_route(method, binding))
        return cls(routes)

    def match(self, http_method: str, path: str) -> tuple[HttpRoute, dict[str, str]]:
        """The route and path variables for a request.

        Raises:
            RouteNotFoundError: No route has this path.
            MethodNotAllowedError: The path exists for other HTTP methods only.
        """
        allowed: list[str] = []
        for route in self.routes:
            params = route.template.match(path)
            if params is None:
                continue
            if route.http_method == http_method.upper():
                return route, params
            allowed.append(route.http_method)
        if allowed:
            if http_method.upper() == "HEAD" and "GET" in allowed:
                return self.match("GET", path)
            raise MethodNotAllowedError(allowed)
        raise RouteNotFoundError(path)


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule) -> HttpRoute:
    kind = rule.WhichOneof("pattern")
    if kind is None or kind == "custom":
        raise ValueError(f"{method.full_name}: unsupported google.api.http pattern {kind}")
    template = PathTemplate.parse(getattr(rule, kind))
    for segment in template.segments:
        if isinstance(segment, tuple):
            _resolve(method.input_type, segment[0], method.full_name)
    if rule.body not in ("", "*"):
        _resolve(method.input_type, rule.body, method.full_name)
    return HttpRoute(method, kind.upper(), template, rule.body)


def _resolve(descriptor: Any, dotted: str, where: str) -> None:
    """Check at import that a template names real fields."""
    for part in dotted.split("."):
        field = descriptor.fields_by_name.get(part)
        if field is None:
            raise ValueError(f"{where}: the http rule names unknown field {dotted!r}")
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            descriptor = field.message_type
