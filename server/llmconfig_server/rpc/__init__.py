"""gRPC plumbing: status mapping, proto conversion, handler wrapping, health, reflection."""
