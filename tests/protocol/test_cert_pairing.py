"""Code-less pairing (SIGMA-I with the technician's certificate), without any network.

Real X25519, Ed25519, HKDF and ChaCha20-Poly1305 throughout; times are plain integers.
"""

from __future__ import annotations

import re
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.cert_pairing import (
    FINISH_SIZES,
    HELLO_SIZE,
    MAX_REPLY_SIZE,
    AgentHandshake,
    DeviceExpectation,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import (
    DeviceRefused,
    Expired,
    ForeignSigner,
    HandshakeAltered,
    LocalProtocolError,
    MalformedMessage,
    MissingRole,
    NotYetValid,
    PuenteError,
    RemoteProtocolError,
    Revoked,
    TechnicianRefused,
    VersionMismatch,
)
from protocol.identity import (
    OrganisationSecret,
    issue_certificate,
    parse_certificate,
    raw_public_key,
    verify_certificate,
)
from protocol.mux import Channel, MessageReceived
from protocol.pairing import PROTOCOL_VERSION, SessionKeys
from protocol.session import Paired, Session

NOW = 1_800_000_000
DAY = 86_400
PLACE = Rendezvous("417", "T-1042")
SAS_FORMAT = re.compile(r"\d{4} \d{4}")


def organisation(name: str = "Acme Help Desk") -> OrganisationSecret:
    return OrganisationSecret(name, Ed25519PrivateKey.generate())


ORG = organisation()
OTHER_ORG = organisation("Scam Support Ltd")


def technician(
    org: OrganisationSecret = ORG,
    *,
    not_before: int = NOW - DAY,
    not_after: int = NOW + DAY,
    roles: tuple[str, ...] = (),
    serial: str | None = None,
) -> TechnicianProof:
    key = Ed25519PrivateKey.generate()
    certificate = issue_certificate(
        org, "Ana Técnica", key.public_key(), not_before, not_after, serial=serial, roles=roles
    )
    return TechnicianProof(certificate, key)


def policy(**kwargs: object) -> TechnicianPolicy:
    return TechnicianPolicy(ORG.public_key, **kwargs)  # type: ignore[arg-type]


def run(agent: AgentHandshake, tech: TechnicianHandshake) -> tuple[SessionKeys, SessionKeys]:
    reply = tech.receive_hello(agent.start())
    finish = agent.receive_reply(reply)
    tech_keys = tech.receive_finish(finish)
    assert agent.keys is not None
    return agent.keys, tech_keys


def check_matching(agent: SessionKeys, tech: SessionKeys) -> None:
    assert agent.role is Role.AGENT and tech.role is Role.TECHNICIAN
    assert agent.send_key == tech.recv_key and agent.recv_key == tech.send_key
    assert agent.send_key != agent.recv_key
    assert agent.session_id == tech.session_id and len(agent.session_id) == 16
    assert agent.transcript_hash == tech.transcript_hash
    assert agent.resume_secret == tech.resume_secret
    assert agent.sas == tech.sas and SAS_FORMAT.fullmatch(agent.sas)


# --- happy paths ---------------------------------------------------------------------


def test_an_anonymous_agent_pairs_with_a_certified_technician() -> None:
    proof = technician()
    agent = AgentHandshake(PLACE, policy(), NOW)
    tech = TechnicianHandshake(PLACE, proof)
    agent_keys, tech_keys = run(agent, tech)
    check_matching(agent_keys, tech_keys)
    assert agent.technician is not None and agent.technician.name == "Ana Técnica"
    assert agent.technician.organisation == "Acme Help Desk"
    assert tech.device_key is None


def test_an_agent_with_a_device_key_proves_it_and_the_technician_learns_it() -> None:
    device = Ed25519PrivateKey.generate()
    raw = raw_public_key(device.public_key())
    agent = AgentHandshake(PLACE, policy(), NOW, device_key=device)
    tech = TechnicianHandshake(
        PLACE, technician(), DeviceExpectation(anonymous_ok=False, device_key=raw)
    )
    check_matching(*run(agent, tech))
    assert tech.device_key == raw


def test_every_pairing_has_fresh_keys_and_a_different_check_code_space() -> None:
    proof = technician()
    first = run(AgentHandshake(PLACE, policy(), NOW), TechnicianHandshake(PLACE, proof))[0]
    second = run(AgentHandshake(PLACE, policy(), NOW), TechnicianHandshake(PLACE, proof))[0]
    assert first.send_key != second.send_key and first.session_id != second.session_id


def test_a_certificate_with_the_required_role_is_accepted() -> None:
    agent = AgentHandshake(PLACE, policy(required_role="unattended"), NOW)
    run(agent, TechnicianHandshake(PLACE, technician(roles=("unattended",))))
    assert agent.technician is not None and agent.technician.roles == ("unattended",)


def test_the_session_runs_unchanged_after_a_code_less_pairing() -> None:
    """Secure channel and multiplexer work on these keys exactly as after SPAKE2."""
    agent = Session.certified(AgentHandshake(PLACE, policy(), NOW))
    tech = Session.certified(TechnicianHandshake(PLACE, technician()))
    agent.start()
    tech.start()
    assert tech.data_to_send() is None  # the agent speaks first

    def pump(src: Session, dst: Session) -> list[object]:
        while (data := src.data_to_send()) is not None:
            dst.receive_data(bytes(data))
        return dst.events_received()

    pump(agent, tech)  # hello
    agent_events = pump(tech, agent)  # reply -> the agent opens
    tech_events = pump(agent, tech)  # finish -> the technician opens
    assert [type(e) for e in agent_events] == [Paired]
    assert [type(e) for e in tech_events] == [Paired]
    assert isinstance(agent_events[0], Paired) and isinstance(tech_events[0], Paired)
    assert agent_events[0].sas == tech_events[0].sas
    agent.send(Channel.CONTROL, b"hello technician")
    events = pump(agent, tech)
    assert events == [MessageReceived(Channel.CONTROL, b"hello technician")]
    tech.send(Channel.CONTROL, b"hello customer")
    assert pump(tech, agent) == [MessageReceived(Channel.CONTROL, b"hello customer")]
    assert agent.resume_id == tech.resume_id


def test_a_code_session_and_a_code_less_one_refuse_each_other_with_a_sentence() -> None:
    coded = Session(Role.TECHNICIAN, SessionCode.parse("417-862-093"), "T-1042")
    agent = Session.certified(AgentHandshake(PLACE, policy(), NOW))
    coded.start()
    agent.start()
    hello = agent.data_to_send()
    assert hello is not None
    with pytest.raises(RemoteProtocolError, match="session code and the other without"):
        coded.receive_data(bytes(hello))


def test_a_session_needs_exactly_one_way_to_pair() -> None:
    with pytest.raises(LocalProtocolError):
        Session(Role.AGENT, None, "T-1")
    with pytest.raises(LocalProtocolError):
        Session(Role.TECHNICIAN, None, "", handshake=AgentHandshake(PLACE, policy(), NOW))


# --- the agent refuses technicians it cannot trust -------------------------------------


@pytest.mark.parametrize(
    ("proof", "agent_policy", "error", "sentence"),
    [
        (technician(OTHER_ORG), policy(), ForeignSigner, "another organisation"),
        (technician(not_after=NOW - 1, not_before=NOW - DAY), policy(), Expired, "expired"),
        (technician(not_before=NOW + 60, not_after=NOW + DAY), policy(), NotYetValid, "clocks"),
        (
            technician(serial="ab" * 16),
            policy(revoked=frozenset({"ab" * 16})),
            Revoked,
            "revoked",
        ),
        (technician(), policy(required_role="unattended"), MissingRole, "--role unattended"),
    ],
    ids=["other organisation", "expired", "not yet valid", "revoked", "missing role"],
)
def test_the_agent_refuses_a_certificate_it_does_not_trust(
    proof: TechnicianProof,
    agent_policy: TechnicianPolicy,
    error: type[Exception],
    sentence: str,
) -> None:
    agent = AgentHandshake(PLACE, agent_policy, NOW)
    reply = TechnicianHandshake(PLACE, proof).receive_hello(agent.start())
    with pytest.raises(TechnicianRefused, match=sentence) as caught:
        agent.receive_reply(reply)
    assert isinstance(caught.value.__cause__, error)
    assert agent.keys is None and agent.technician is None


def test_a_copied_certificate_without_its_key_is_refused() -> None:
    real = technician()
    thief = TechnicianProof(real.certificate, Ed25519PrivateKey.generate())
    agent = AgentHandshake(PLACE, policy(), NOW)
    reply = TechnicianHandshake(PLACE, thief).receive_hello(agent.start())
    with pytest.raises(TechnicianRefused, match="could not prove they hold its key"):
        agent.receive_reply(reply)


def test_a_relay_that_swaps_both_ephemerals_is_caught_by_the_signature() -> None:
    """The strongest relay: it runs its own exchange with each end and re-encrypts the
    technician's real certificate and signature towards the agent. The signature covers
    the ephemerals the technician saw, so the agent refuses."""
    proof = technician()
    agent = AgentHandshake(PLACE, policy(), NOW)
    tech = TechnicianHandshake(PLACE, proof)
    # The relay plays agent towards the technician (it knows the organisation's public key).
    relay_as_agent = AgentHandshake(PLACE, policy(), NOW)
    real_reply = tech.receive_hello(relay_as_agent.start())
    relay_as_agent.receive_reply(real_reply)  # it learns the certificate and the signature
    signature = _opened_reply(relay_as_agent, real_reply)[1]
    # …and technician towards the agent, with the real certificate and the real signature.
    relay_as_tech = _ReplayingTechnician(PLACE, proof.certificate, signature)
    forged = relay_as_tech.receive_hello(agent.start())
    with pytest.raises(TechnicianRefused, match="stand in for the technician"):
        agent.receive_reply(forged)


def test_the_technician_refuses_a_forged_device_finish() -> None:
    """A relay standing in for an enrolled device has no device key: refused."""
    device = Ed25519PrivateKey.generate()
    expected = raw_public_key(device.public_key())
    tech = TechnicianHandshake(
        PLACE, technician(), DeviceExpectation(anonymous_ok=False, device_key=expected)
    )
    relay = AgentHandshake(PLACE, policy(), NOW)  # anonymous: no device key
    with pytest.raises(DeviceRefused, match="did not prove it is the enrolled device"):
        tech.receive_finish(relay.receive_reply(tech.receive_hello(relay.start())))
    other = AgentHandshake(PLACE, policy(), NOW, device_key=Ed25519PrivateKey.generate())
    tech = TechnicianHandshake(
        PLACE, technician(), DeviceExpectation(anonymous_ok=False, device_key=expected)
    )
    with pytest.raises(DeviceRefused, match="device key differs"):
        tech.receive_finish(other.receive_reply(tech.receive_hello(other.start())))


def test_an_anonymous_agent_is_refused_where_a_device_is_required() -> None:
    tech = TechnicianHandshake(PLACE, technician(), DeviceExpectation(anonymous_ok=False))
    agent = AgentHandshake(PLACE, policy(), NOW)
    with pytest.raises(DeviceRefused):
        tech.receive_finish(agent.receive_reply(tech.receive_hello(agent.start())))


# --- tampering, replays, wrong context, malformed sizes --------------------------------


def _flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.mark.parametrize("index", [0, 31, 32, 100, -1])
def test_a_tampered_reply_is_refused(index: int) -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    reply = TechnicianHandshake(PLACE, technician()).receive_hello(agent.start())
    with pytest.raises((HandshakeAltered, MalformedMessage)):
        agent.receive_reply(_flip(reply, index))
    assert agent.keys is None


@pytest.mark.parametrize("index", [0, 20, -1])
def test_a_tampered_finish_is_refused(index: int) -> None:
    agent = AgentHandshake(PLACE, policy(), NOW, device_key=Ed25519PrivateKey.generate())
    tech = TechnicianHandshake(PLACE, technician())
    finish = agent.receive_reply(tech.receive_hello(agent.start()))
    with pytest.raises(HandshakeAltered, match="altered on the way"):
        tech.receive_finish(_flip(finish, index))
    assert tech.keys is None


def test_a_tampered_hello_leaves_the_two_ends_unable_to_agree() -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    hello = agent.start()
    reply = TechnicianHandshake(PLACE, technician()).receive_hello(_flip(hello, 5))
    with pytest.raises(HandshakeAltered):
        agent.receive_reply(reply)


def test_a_replayed_reply_from_an_earlier_exchange_is_refused() -> None:
    proof = technician()
    earlier_agent = AgentHandshake(PLACE, policy(), NOW)
    recorded = TechnicianHandshake(PLACE, proof).receive_hello(earlier_agent.start())
    agent = AgentHandshake(PLACE, policy(), NOW)
    agent.start()
    with pytest.raises(HandshakeAltered):
        agent.receive_reply(recorded)


def test_a_replayed_finish_from_an_earlier_exchange_is_refused() -> None:
    proof = technician()
    device = Ed25519PrivateKey.generate()
    earlier_agent = AgentHandshake(PLACE, policy(), NOW, device_key=device)
    earlier_tech = TechnicianHandshake(PLACE, proof)
    recorded = earlier_agent.receive_reply(earlier_tech.receive_hello(earlier_agent.start()))
    tech = TechnicianHandshake(PLACE, proof)
    tech.receive_hello(AgentHandshake(PLACE, policy(), NOW).start())
    with pytest.raises(HandshakeAltered):
        tech.receive_finish(recorded)


@pytest.mark.parametrize(
    "other", [Rendezvous("418", "T-1042"), Rendezvous("417", "T-9999")], ids=["nameplate", "ticket"]
)
def test_the_nameplate_and_ticket_are_bound(other: Rendezvous) -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    reply = TechnicianHandshake(other, technician()).receive_hello(agent.start())
    with pytest.raises(HandshakeAltered):
        agent.receive_reply(reply)


def test_another_protocol_version_is_named() -> None:
    hello = bytes([PROTOCOL_VERSION + 1]) + bytes(32)
    with pytest.raises(VersionMismatch, match="update both"):
        TechnicianHandshake(PLACE, technician()).receive_hello(hello)


@pytest.mark.parametrize(
    "hello",
    [b"", bytes([PROTOCOL_VERSION]), bytes([PROTOCOL_VERSION]) + bytes(33)],
    ids=["empty", "no key", "too long"],
)
def test_a_malformed_hello_is_refused(hello: bytes) -> None:
    with pytest.raises(MalformedMessage):
        TechnicianHandshake(PLACE, technician()).receive_hello(hello)


def test_a_low_order_key_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="key-exchange key is invalid"):
        TechnicianHandshake(PLACE, technician()).receive_hello(
            bytes([PROTOCOL_VERSION]) + bytes(32)
        )


@pytest.mark.parametrize("size", [0, 47, MAX_REPLY_SIZE + 1])
def test_a_reply_of_the_wrong_size_is_refused(size: int) -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    agent.start()
    with pytest.raises(MalformedMessage, match="wrong size"):
        agent.receive_reply(bytes(size))


@pytest.mark.parametrize("size", [0, FINISH_SIZES[0] - 1, FINISH_SIZES[1] + 1, 10_000])
def test_a_finish_of_the_wrong_size_is_refused(size: int) -> None:
    tech = TechnicianHandshake(PLACE, technician())
    tech.receive_hello(AgentHandshake(PLACE, policy(), NOW).start())
    with pytest.raises(MalformedMessage, match="wrong size"):
        tech.receive_finish(bytes(size))


def test_the_api_refuses_calls_out_of_order() -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    with pytest.raises(LocalProtocolError):
        agent.receive_reply(bytes(HELLO_SIZE))
    agent.start()
    with pytest.raises(LocalProtocolError):
        agent.start()
    tech = TechnicianHandshake(PLACE, technician())
    with pytest.raises(LocalProtocolError):
        tech.receive_finish(bytes(FINISH_SIZES[0]))


def test_every_error_is_a_puente_error_with_a_sentence() -> None:
    agent = AgentHandshake(PLACE, policy(), NOW)
    reply = TechnicianHandshake(PLACE, technician(OTHER_ORG)).receive_hello(agent.start())
    with pytest.raises(PuenteError) as caught:
        agent.receive_reply(reply)
    text = str(caught.value)
    assert text.endswith(".") and "Scam Support Ltd" in text


# --- certificate roles (backward compatible) -------------------------------------------


def test_certificates_without_roles_keep_their_exact_form() -> None:
    proof = technician()
    assert b'"roles"' not in proof.certificate
    assert parse_certificate(proof.certificate).roles == ()


def test_roles_are_signed_and_checked() -> None:
    proof = technician(roles=("unattended", "printing"))
    certificate = verify_certificate(proof.certificate, ORG.public_key, NOW, (), "printing")
    assert certificate.roles == ("printing", "unattended")
    tampered = proof.certificate.replace(b'"printing"', b'"admin-all"')
    with pytest.raises(PuenteError):
        verify_certificate(tampered, ORG.public_key, NOW)
    with pytest.raises(ValueError, match="lowercase"):
        technician(roles=("Not A Role",))


# --- helpers: a relay that knows every key it made -------------------------------------


def _opened_reply(relay_as_agent: AgentHandshake, reply: bytes) -> list[bytes]:
    """What the relay reads from a reply sent to its own ephemeral: cert, signature, MAC."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    plain = ChaCha20Poly1305(relay_as_agent._k_technician).decrypt(
        bytes(12), reply[32:], relay_as_agent._th1
    )
    parts, offset = [], 0
    while offset < len(plain):
        (size,) = struct.unpack_from(">I", plain, offset)
        parts.append(plain[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return parts


class _ReplayingTechnician(TechnicianHandshake):
    """Sends a real certificate with a signature it did not make (over other ephemerals)."""

    def __init__(self, rendezvous: Rendezvous, certificate: bytes, signature: bytes) -> None:
        super().__init__(rendezvous, TechnicianProof(certificate, Ed25519PrivateKey.generate()))
        self._signature = signature

    def receive_hello(self, message: bytes) -> bytes:
        key = self._proof.private_key

        class _Replay:
            def __init__(self, signature: bytes) -> None:
                self._signature = signature

            def sign(self, data: bytes) -> bytes:
                return self._signature

        self._proof = TechnicianProof(self._proof.certificate, _Replay(self._signature))  # type: ignore[arg-type]
        try:
            return super().receive_hello(message)
        finally:
            self._proof = TechnicianProof(self._proof.certificate, key)


@pytest.mark.parametrize(
    ("device", "signature"),
    [(bytes(31), bytes(65)), (b"", bytes(96))],
    ids=["short device key", "signature without a key"],
)
def test_a_finish_with_a_malformed_device_proof_is_refused(device: bytes, signature: bytes) -> None:
    """A FINISH of the right size and a valid MAC, but a device key that is not one."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from protocol.pairing import _lp

    agent = AgentHandshake(PLACE, policy(), NOW)
    tech = TechnicianHandshake(PLACE, technician())
    agent.receive_reply(tech.receive_hello(agent.start()))
    mac = _mac_for(agent, device)
    th2 = tech._th2
    assert th2 is not None
    finish = ChaCha20Poly1305(agent._k_agent).encrypt(bytes(12), _lp(device, signature, mac), th2)
    with pytest.raises(MalformedMessage, match="malformed device key"):
        tech.receive_finish(finish)


def _mac_for(agent: AgentHandshake, device: bytes) -> bytes:
    import hashlib
    import hmac

    from protocol.pairing import _lp

    return hmac.new(agent._km_agent, _lp(b"agent", device), hashlib.sha256).digest()
