"""A real gRPC server on 127.0.0.1 for tests of `call: grpc`: a greeter with reflection.

The service is defined by :data:`PROTO` (written to ``proto_path``), compiled with protoc at
start; its handlers use the dynamic message classes, and the reflection service serves the
same descriptors, so a test can call it with a proto file or through reflection.
"""

from __future__ import annotations

import tempfile
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection
from grpc_tools import protoc

PROTO = """
syntax = "proto3";
package greet.v1;
import "google/protobuf/timestamp.proto";

message HelloRequest {
  string name = 1;
  int32 times = 2;
  google.protobuf.Timestamp at = 3;
}
message HelloReply {
  string message = 1;
  repeated string echoes = 2;
}
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Fail (HelloRequest) returns (HelloReply);
}
"""
SERVICE = "greet.v1.Greeter"


class GrpcServer:
    """``with GrpcServer() as server: server.port``; ``requests`` records the names greeted."""

    def __init__(self, *, reflection_enabled: bool = True) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.proto_path = Path(self._dir.name) / "greet.proto"
        self.proto_path.write_text(PROTO)
        out = Path(self._dir.name) / "greet.pb"
        include = Path(protoc.__file__).parent / "_proto"
        code = protoc.main(
            ["protoc", f"-I{self._dir.name}", f"-I{include}", f"--descriptor_set_out={out}",
             "--include_imports", str(self.proto_path)]
        )  # fmt: skip
        assert code == 0, "the test proto must compile"
        self.pool = DescriptorPool()
        for proto in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
            self.pool.AddSerializedFile(proto.SerializeToString())
        request = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("greet.v1.HelloRequest")
        )
        self.reply = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("greet.v1.HelloReply")
        )
        self.requests: list[str] = []
        handlers = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "SayHello": grpc.unary_unary_rpc_method_handler(
                    self._hello, request.FromString, self.reply.SerializeToString
                ),
                "Fail": grpc.unary_unary_rpc_method_handler(
                    self._fail, request.FromString, self.reply.SerializeToString
                ),
            },
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((handlers,))
        if reflection_enabled:
            reflection.enable_server_reflection(
                (SERVICE, reflection.SERVICE_NAME), self._server, pool=self.pool
            )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def _hello(self, request: Any, _context: grpc.ServicerContext) -> Any:
        self.requests.append(request.name)
        reply: Any = self.reply(message=f"Hello, {request.name}")
        reply.echoes.extend([request.name] * request.times)
        if request.HasField("at"):
            reply.echoes.append(str(request.at.seconds))
        return reply

    def _fail(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no greeting for {request.name}")

    def __enter__(self) -> GrpcServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(10)
        self._dir.cleanup()
