"""Use cases (what a request does) and the servicers that expose them over gRPC."""
