"""gRPC servicers: protobuf in, plain service calls, protobuf out."""
