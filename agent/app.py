"""Running the agent: trust set-up, joining the session, serving it with a UI.

Both front ends use this module: the command line (:mod:`agent.cli`) and the window
(:mod:`agent.tk_ui`), which runs :func:`run_agent` on a worker thread. Neither calls
back into the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import TrustSetupError
from agent.i18n import customer_error, t
from agent.settings import BakedSettings
from protocol.code import SessionCode

# The session's modules (the link, the capabilities with the screen pipeline and
# numpy, the trust checks) are imported where they are used, not here: the window
# must be on the screen before they load (acceptance: a window in under 3 seconds).
if TYPE_CHECKING:
    import ssl

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.trust import AgentTrust
    from agent.ui import CustomerUI
    from link.connection import Link


@dataclass(frozen=True)
class CodeLessJoin:
    """Join a session without a code: the relay's ``nameplate`` (not a secret), and the
    technician proves itself with a certificate of the pinned organisation (SIGMA-I,
    :mod:`protocol.cert_pairing`). A help request is anonymous; an enrolled device
    passes its ``device_key``; ``required_role`` (e.g. ``unattended``) narrows which
    technicians are accepted. Needs a pinned organisation key."""

    nameplate: str
    device_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    required_role: str | None = None


def fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


def ssl_context_for(ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS context of --ca-file (None: the system's CAs); LinkError if unusable."""
    from link.connection import client_ssl_context

    return client_ssl_context(ca_file)


async def load_trust(
    org_key: Path | BakedSettings | None, relay: str, ssl_context: ssl.SSLContext | None
) -> AgentTrust:
    """The pinned organisation key (from --org-key or built in) and its revocations."""
    from agent.trust import AgentTrust, FixVersions, fetch_revocations, load_pinned_key
    from protocol.errors import TrustError
    from protocol.identity import load_public_key

    trust = AgentTrust()
    if isinstance(org_key, BakedSettings):
        if not org_key.org_public_key:
            return trust
        try:
            trust.organisation_key = load_public_key(org_key.org_public_key.encode("ascii"))
        except (TrustError, UnicodeError) as exc:
            raise TrustSetupError(f"The built-in organisation key is unusable ({exc}).") from None
    elif org_key is not None:
        trust.organisation_key = load_pinned_key(Path(org_key))
    else:
        return trust
    trust.fix_versions = FixVersions.for_key(trust.key_id)
    trust.revoked, trust.revocation_number = await asyncio.to_thread(
        fetch_revocations, relay, trust.organisation_key, ssl_context
    )
    return trust


async def open_link(
    relay: str,
    join: SessionCode | CodeLessJoin,
    trust: AgentTrust,
    ssl_context: ssl.SSLContext | None,
) -> Link:
    """The paired link: with the code (SPAKE2), or code-less against the pinned key.

    Raises LinkError; TrustSetupError when a code-less join has no pinned key.
    """
    from link.connection import Link
    from protocol.envelope import Role
    from protocol.errors import TrustError

    if isinstance(join, SessionCode):
        return await Link.open(relay, Role.AGENT, join, ssl=ssl_context)
    try:
        policy = trust.technician_policy(join.required_role)
    except TrustError as exc:
        raise TrustSetupError(str(exc)) from None
    return await Link.open_certified(
        relay,
        join.nameplate,
        technician_policy=policy,
        device_key=join.device_key,
        ssl=ssl_context,
        clock=trust.clock,
    )


async def run_agent(
    relay: str,
    code: SessionCode | CodeLessJoin,
    log_dir: Path | None,
    ca_file: str | None,
    org_key: Path | BakedSettings | None = None,
    ui: CustomerUI | None = None,
) -> int:
    """Join the session and serve it with ``ui`` (the console by default); exit status.

    ``code`` is the session code, or a :class:`CodeLessJoin` (help requests, enrolled
    devices), which needs ``org_key``. ``org_key`` pins the organisation: a key file
    (--org-key) or the built-in settings.
    """
    from agent.audit import AgentLog
    from agent.capabilities.registry import default_registry
    from agent.session import AgentSession
    from agent.ui import ConsoleUI
    from link.connection import LinkError

    console = ConsoleUI() if ui is None else None
    ui = ui or console
    assert ui is not None
    try:
        ssl_context = ssl_context_for(ca_file)
    except LinkError as exc:
        return fail(str(exc))
    try:
        if console is not None and org_key is not None:
            if not isinstance(org_key, BakedSettings) or org_key.org_public_key:
                console.say(t("app.checking_revocations"))
        trust = await load_trust(org_key, relay, ssl_context)
    except TrustSetupError as exc:
        message = t("error.trust_setup", detail=str(exc))
        if console is None:
            ui.session_ended(message)
        return fail(message)
    if console is not None:
        if isinstance(code, SessionCode):
            console.say(t("app.connecting", code=code))
        else:
            console.say(t("app.connecting_code_less"))
    try:
        link = await open_link(relay, code, trust, ssl_context)
    except TrustSetupError:
        message = t("error.code_less_unpinned")
        if console is None:
            ui.session_ended(message)
        return fail(message)
    except LinkError as exc:
        message = customer_error(exc, relay)
        if console is None:
            ui.session_ended(message)
        return fail(message)
    audit = AgentLog.for_session(log_dir, code.nameplate)
    if trust.pinned:
        audit.write(
            f"Organisation key pinned ({trust.key_id[:16]}); revocation list "
            f"{'number ' + str(trust.revocation_number) if trust.revocation_number else 'none published'}"
            f" ({len(trust.revoked)} revoked certificates)."
        )
    if link.technician_certificate is not None:
        certificate = link.technician_certificate
        audit.write(
            f"Paired without a code: the key exchange verified {certificate.name} "
            f"({certificate.organisation}, certificate {certificate.serial[:8]})."
        )
    session = AgentSession(link, ui, default_registry(), audit, trust)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows; not main thread
        loop.add_signal_handler(
            signal.SIGINT, lambda: asyncio.ensure_future(session.end("ended by the customer"))
        )
    try:
        reason = await session.run()
    except (LinkError, TimeoutError) as exc:
        message = customer_error(exc, relay, link.resume_grace)
        ui.session_ended(message)
        audit.write(f"Session cut off: {exc}")
        print(message, file=sys.stderr, flush=True)
        return 1
    finally:
        audit.write("Log closed.")
        audit.close()
        await link.close()
    ui.session_ended(session.customer_reason(reason))
    if console is not None:
        console.say(t("app.log_kept", path=audit.path))
        console.say("  " + t("app.log_fingerprint", fingerprint=audit.last_hash[:16]))
    return 0
