"""Resume in the pure core: fresh keys from the resume secret, nothing lost or repeated.

No network: two :class:`protocol.session.Session` objects exchange bytes through
lists, and the tests decide which bytes a broken link swallowed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import LocalProtocolError, RemoteProtocolError, ResumeRefused
from protocol.mux import Channel, MessageReceived
from protocol.pairing import PROTOCOL_VERSION, SessionKeys
from protocol.resume import Resumption, resume_id, resume_verifier
from protocol.session import ACK_EVERY, Resumed, Session, State, Wire

Filter = Callable[[bytes], bytes | None]


def outgoing(session: Session) -> list[bytes]:
    out = []
    while (data := session.data_to_send()) is not None:
        out.append(data)
    return out


def deliver(messages: list[bytes], to: Session) -> list[object]:
    for message in messages:
        to.receive_data(message)
    return to.events_received()


def exchange(a: Session, b: Session, rounds: int = 10) -> tuple[list[object], list[object]]:
    """Move bytes both ways until both are quiet; return the events each side saw."""
    events_a: list[object] = []
    events_b: list[object] = []
    for _ in range(rounds):
        to_b, to_a = outgoing(a), outgoing(b)
        if not to_a and not to_b:
            break
        events_b += deliver(to_b, b)
        events_a += deliver(to_a, a)
    return events_a, events_b


def paired() -> tuple[Session, Session]:
    code = SessionCode.new("417")
    agent = Session(Role.AGENT, code, "T-1")
    tech = Session(Role.TECHNICIAN, code, "T-1")
    agent.start()
    tech.start()
    exchange(agent, tech)
    assert agent.state is State.OPEN and tech.state is State.OPEN
    return agent, tech


def chat_payloads(events: list[object]) -> list[bytes]:
    return [
        e.payload for e in events if isinstance(e, MessageReceived) and e.channel == Channel.CHAT
    ]


def test_both_ends_derive_the_same_resume_id_and_the_relay_only_gets_its_hash() -> None:
    agent, tech = paired()
    assert agent.resume_id == tech.resume_id
    assert len(agent.resume_id) == 16
    assert agent.keys is not None
    assert agent.resume_id == resume_id(agent.keys)
    assert resume_verifier(agent.resume_id) == hashlib.sha256(agent.resume_id).hexdigest()
    # The id is not the secret, nor any key of the session.
    assert agent.resume_id not in (
        agent.keys.resume_secret[:16],
        agent.keys.send_key[:16],
        agent.keys.recv_key[:16],
    )


def test_frames_lost_in_the_cut_are_resent_once_and_in_order() -> None:
    agent, tech = paired()
    messages = [b"message %03d " % i + bytes(2000) for i in range(100)]
    for m in messages:
        agent.send(Channel.CHAT, m)
    in_flight = outgoing(agent)
    # The first 40 records arrive (their ACKs come back); the rest die with the link.
    got = chat_payloads(deliver(in_flight[:40], tech))
    deliver(outgoing(tech), agent)  # ACKs
    assert agent.unacknowledged < len(in_flight)
    agent.suspend()
    tech.suspend()
    # The customer keeps working meanwhile: this waits in the multiplexer.
    agent.send(Channel.CHAT, b"sent while cut off")
    assert outgoing(agent) == []
    old_keys = agent.keys

    agent.start_resume()
    tech.start_resume()
    events_a, events_b = exchange(agent, tech)
    got += chat_payloads(events_b)
    assert got == [*messages, b"sent while cut off"]
    assert any(isinstance(e, Resumed) and e.resent == 60 for e in events_a)
    assert agent.state is State.OPEN and tech.state is State.OPEN
    assert agent.keys is old_keys  # the pairing keys (and transcript) stay the session's
    # And the link goes on both ways under the new keys.
    tech.send(Channel.CHAT, b"reply")
    assert chat_payloads(exchange(agent, tech)[0]) == [b"reply"]


def test_each_resume_uses_fresh_keys() -> None:
    agent, tech = paired()
    seen = []
    for _ in range(2):
        agent.send(Channel.CHAT, b"same plaintext")
        seen.append(outgoing(agent)[-1])
        agent.suspend()
        tech.suspend()
        agent.start_resume()
        tech.start_resume()
        exchange(agent, tech)
    assert seen[0] != seen[1]  # same counter 0, same plaintext: different keys


def test_acknowledgements_keep_the_resend_buffer_small() -> None:
    agent, tech = paired()
    for i in range(500):
        agent.send(Channel.CHAT, b"%d" % i)
        exchange(agent, tech)
    assert agent.unacknowledged < ACK_EVERY


def test_an_edited_received_count_breaks_the_resume() -> None:
    """A relay that edits a count (to make one end replay old frames) is caught."""
    agent, tech = paired()
    agent.send(Channel.CHAT, b"x")
    deliver(outgoing(agent), tech)
    agent.suspend()
    tech.suspend()
    agent.start_resume()
    tech.start_resume()
    [resume] = outgoing(tech)
    assert resume[0] == Wire.RESUME
    forged = resume[:-8] + struct.pack(">Q", 0)  # "I received nothing"
    deliver([forged], agent)
    [from_agent_resume, from_agent_confirm] = outgoing(agent)
    deliver([from_agent_resume], tech)
    [tech_confirm] = outgoing(tech)
    with pytest.raises(ResumeRefused):
        deliver([from_agent_confirm], tech)
    with pytest.raises(ResumeRefused):
        deliver([tech_confirm], agent)
    assert agent.state is State.CLOSED and tech.state is State.CLOSED


def test_someone_with_the_resume_id_but_not_the_secret_cannot_resume() -> None:
    agent, tech = paired()
    assert tech.keys is not None
    impostor_keys = SessionKeys(
        role=Role.TECHNICIAN,
        session_id=tech.keys.session_id,
        transcript_hash=tech.keys.transcript_hash,
        send_key=bytes(32),
        recv_key=bytes(32),
        resume_secret=bytes(32),  # everything public, but not the secret
        sas=tech.keys.sas,
    )
    impostor = Resumption(impostor_keys, received=0)
    agent.suspend()
    agent.start_resume()
    [agent_resume] = outgoing(agent)
    deliver([bytes([Wire.RESUME]) + impostor.start()], agent)
    impostor_tag = impostor.receive_resume(agent_resume[1:])
    agent_confirm = outgoing(agent)[-1]
    with pytest.raises(ResumeRefused):
        impostor.receive_confirm(agent_confirm[1:])
    with pytest.raises(ResumeRefused):
        deliver([bytes([Wire.RESUME_CONFIRM]) + impostor_tag], agent)


def test_stale_records_of_the_broken_link_are_dropped_not_opened() -> None:
    agent, tech = paired()
    tech.send(Channel.CHAT, b"old")
    stale = outgoing(tech)
    agent.suspend()
    tech.suspend()
    agent.start_resume()
    # Sealed under the old keys, arriving after the link was rebuilt: ignored.
    assert deliver(stale, agent) == []
    assert agent.state is State.RESUMING
    tech.start_resume()
    events_agent, _ = exchange(agent, tech)
    assert agent.state is State.OPEN
    # Its frame was resent under the new keys and arrived exactly once.
    assert chat_payloads(events_agent) == [b"old"]


def test_stale_record_after_the_handshake_began_is_an_error() -> None:
    agent, tech = paired()
    tech.send(Channel.CHAT, b"old")
    stale = outgoing(tech)
    agent.suspend()
    tech.suspend()
    agent.start_resume()
    tech.start_resume()
    deliver(outgoing(tech)[:1], agent)  # the technician's RESUME
    assert agent.state is State.RESUME_CONFIRMING
    with pytest.raises(RemoteProtocolError):
        deliver(stale, agent)


def test_a_resume_cut_half_way_can_be_run_again() -> None:
    agent, tech = paired()
    for i in range(20):
        agent.send(Channel.CHAT, b"%d" % i)
    received = chat_payloads(deliver(outgoing(agent)[:5], tech))
    agent.suspend()
    tech.suspend()
    agent.start_resume()
    tech.start_resume()
    # The agent completes; the link dies before the technician gets the agent's tag.
    deliver(outgoing(tech), agent)
    agent_out = outgoing(agent)  # its RESUME and CONFIRM
    deliver(agent_out[:1], tech)
    deliver(outgoing(tech), agent)  # the technician's CONFIRM: the agent is OPEN again
    assert agent.state is State.OPEN and tech.state is State.RESUME_CONFIRMING
    agent.suspend()
    tech.suspend()
    agent.start_resume()
    tech.start_resume()
    _, events_tech = exchange(agent, tech)
    received += chat_payloads(events_tech)
    assert received == [b"%d" % i for i in range(20)]


def test_lifecycle_errors_are_local() -> None:
    code = SessionCode.new("417")
    fresh = Session(Role.AGENT, code, "T-1")
    assert not fresh.resumable
    with pytest.raises(LocalProtocolError):
        fresh.start_resume()
    with pytest.raises(LocalProtocolError):
        _ = fresh.resume_id
    agent, _ = paired()
    agent.close("done")
    assert not agent.resumable
    with pytest.raises(LocalProtocolError):
        agent.send(Channel.CHAT, b"x")


def test_resume_message_checks() -> None:
    agent, _ = paired()
    assert agent.keys is not None
    r = Resumption(agent.keys, 0, X25519PrivateKey.generate())
    with pytest.raises(RemoteProtocolError):
        r.receive_resume(b"")
    with pytest.raises(RemoteProtocolError):
        r.receive_resume(r.start()[:-1])
    with pytest.raises(RemoteProtocolError):
        r.receive_resume(bytes([9]) + r.start()[1:])
    with pytest.raises(ResumeRefused):  # an all-zero (low-order) public key
        Resumption(agent.keys, 0).receive_resume(bytes([PROTOCOL_VERSION]) + bytes(32) + bytes(8))
