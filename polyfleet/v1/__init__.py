"""Generated protobuf and gRPC code for the polyfleet.v1 API (see protos/). Do not edit."""
