"""The client side of the wire, shared by the agent and the technician.

:mod:`link.connection` dials the relay, claims a nameplate and drives the pure
:class:`protocol.session.Session` over the paired connection, reconnecting and resuming
on its own; :mod:`link.tunnel` carries a byte stream (the SSH session) over one of its
channels; :mod:`link.relay_address` checks the relay's URL and builds its TLS context;
:mod:`link.errors` draws the exception tree. It stands on :mod:`protocol` only; the relay
never imports it.
"""
