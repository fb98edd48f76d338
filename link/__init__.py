"""The client side of the wire, shared by the agent and the technician.

:mod:`link.connection` dials the relay, claims a nameplate and drives the pure
:class:`protocol.session.Session` over the paired connection, reconnecting and resuming
on its own; :mod:`link.tunnel` carries a byte stream (the SSH session) over one of its
channels. It stands on :mod:`protocol` only; the relay never imports it.
"""
