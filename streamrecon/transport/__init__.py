"""The mesh stream over ZeroMQ: the wire format (``wire``, docs/protocol.md), the publisher and
the subscriber, the addresses they accept (``address``), CURVE keys (``curve``)."""
