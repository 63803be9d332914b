"""The mesh stream over ZeroMQ: the wire format (``wire``, docs/protocol.md), the publisher and
the subscriber, CURVE keys (``curve``)."""
