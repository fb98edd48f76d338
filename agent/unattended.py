"""Unattended access to an enrolled device, under the policy its owner accepted.

The relay tells the device (over its presence WebSocket, :mod:`agent.device_link`)
that a technician asks for a session, with a fresh rendezvous nameplate. The device
starts ``puente-agent unattended`` (this module), which:

1. pairs code-less (:mod:`protocol.cert_pairing`) with its device key, accepting only
   a certificate of its own organisation (the key it enrolled with) that carries the
   ``unattended`` role; anything else is refused in the key exchange, both ends told;
2. lets the owner's signed policy decide (:func:`admission`), before anything is shown
   to the technician or sent: ``never`` refuses; ``ask-deny`` asks whoever is signed in
   and refuses when nobody answers in time; ``ask-allow`` asks and lets the technician
   in when the countdown runs out; ``allowed`` lets them in without asking;
3. then the policy answers instead of the customer: only the capabilities it lists one
   by one can be used (:meth:`agent.consent.ConsentGate.follow_policy`), and a banner
   stays up for the whole session, from which whoever is signed in can end it.

When the device's service runs it (``--helpers-fd``, :mod:`agent.helper_hub`), the
service has no display: the question and the banner reach the people signed in through
their helpers (:mod:`agent.helper_ui`, :mod:`agent.user_helper`), and screen view and
remote control say they are not available from the service (:func:`capabilities_for`).

Every request, refusal and session goes in the device's own hash-chained log
(``unattended.log`` in the device's state folder, :class:`agent.audit.AgentLog`); the
ticket gets the technician's summary at the end, as for any session.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.app import CodeLessJoin, fail, open_link, ssl_context_for
from agent.audit import AgentLog
from agent.consent import UnattendedQuestion
from agent.enrolment import DeviceState, read_state
from agent.errors import AgentError, TrustSetupError
from agent.i18n import customer_error, set_language, t
from protocol.device_policy import DevicePolicy
from protocol.errors import TrustError
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    from agent.capabilities.base import CapabilityRegistry
    from agent.session import Admission, AgentSession
    from agent.ui import CustomerUI
    from protocol.identity import Certificate

#: The role a technician's certificate must carry for unattended access.
UNATTENDED_ROLE = "unattended"
#: The device's log of unattended sessions, in its state folder.
LOG_NAME = "unattended.log"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent unattended",
        description="Serve one unattended session on this enrolled computer. The device "
        "link starts this when the relay says a technician asks; you rarely run it "
        "yourself. Only a technician certified by this computer's organisation with the "
        "'unattended' role can pair, and the policy the owner accepted at enrolment "
        "decides: never, ask and deny when nobody answers, ask and allow after a "
        "countdown, or the listed capabilities only.",
        epilog="example:\n  puente-agent unattended --nameplate 417 --ticket HD-1042",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nameplate", required=True, help="the rendezvous the relay named")
    parser.add_argument("--ticket", required=True, help="the ticket the technician named")
    parser.add_argument("--state-dir", type=Path, help="the enrolment's folder (default: yours)")
    parser.add_argument("--ca-file", help="trust this CA certificate for the relay (wss://)")
    parser.add_argument(
        "--console", action="store_true", help="ask and show the banner in this terminal"
    )
    parser.add_argument("--lang", choices=("en", "es"), help="language of what is shown")
    parser.add_argument(
        "--helpers-fd",
        type=int,
        metavar="FD",
        help="the socket an enrolled device's service hands over: ask and show the banner "
        "in the desktops of the people signed in, through their helpers "
        "('puente-agent user-helper'); the service sets it",
    )
    return parser


def unattended_main(argv: list[str]) -> int:
    """``puente-agent unattended``: exit 0 after a session, 1 refused or failed."""
    from agent.trust import state_folder

    args = build_parser().parse_args(argv)
    if args.lang:
        set_language(args.lang)
    # The same default as 'puente-agent enrol' (agent.enrol_command, which imports the
    # device link, which starts this: not imported here, to keep imports loop-free).
    folder = args.state_dir or Path(os.environ.get("PUENTE_STATE_DIR") or state_folder() / "device")
    try:
        state = read_state(folder)
    except AgentError as exc:
        return fail(str(exc))
    if state is None:
        return fail(t("unattended.not_enrolled", folder=folder))
    try:
        policy = state.verified_policy()
    except TrustError as exc:
        return fail(t("unattended.policy_unusable", detail=exc))
    if args.helpers_fd is not None:
        from agent.helper_ui import HelperUI

        ui = HelperUI(args.helpers_fd)
        return asyncio.run(
            run_unattended(
                state, policy, args.nameplate, args.ticket, args.ca_file, ui, from_service=True
            )
        )
    if not args.console:
        from agent import tk_ui

        if tk_ui.display_problem() is None:
            return _run_window(state, policy, args)
    return asyncio.run(run_unattended(state, policy, args.nameplate, args.ticket, args.ca_file))


async def run_unattended(
    state: DeviceState,
    policy: DevicePolicy,
    nameplate: str,
    ticket: str,
    ca_file: str | None,
    ui: CustomerUI | None = None,
    from_service: bool = False,
) -> int:
    """Pair with the technician, let the policy decide, serve the session; exit status.

    ``from_service``: run by an enrolled device's service (``--helpers-fd``), whose
    ``ui`` reaches the people signed in through their helpers (:mod:`agent.helper_ui`)
    and which cannot see their screen (:func:`capabilities_for`)."""
    from agent.app import load_trust
    from agent.session import AgentSession
    from agent.settings import BakedSettings
    from agent.ui import ConsoleUI
    from link.connection import LinkError, SessionLost

    ui = ui or ConsoleUI()
    log = AgentLog(state.folder / LOG_NAME)
    log.write(
        f"Unattended access asked through the relay for ticket {safe_text(ticket, 200)} "
        f"(nameplate {nameplate}); policy number {policy.number}, mode "
        f"{policy.unattended.mode}."
    )
    try:
        await _start_ui(ui, log)
        ssl_context = ssl_context_for(ca_file)
        trust = await load_trust(
            BakedSettings(org_public_key=state.organisation_key_pem), state.relay, ssl_context
        )
        link = await open_link(
            state.relay,
            CodeLessJoin(nameplate, device_key=state.key, required_role=UNATTENDED_ROLE),
            trust,
            ssl_context,
        )
    except (TrustSetupError, LinkError) as exc:
        log.write(f"Refused before anything was shown or allowed: {exc}")
        message = customer_error(exc, state.relay) if isinstance(exc, LinkError) else str(exc)
        ui.session_ended(message)
        await _stop_ui(ui)
        log.close()
        return fail(message)
    certificate = link.technician_certificate
    if certificate is not None:
        log.write(
            f"The key exchange verified {certificate.name} ({certificate.organisation}, "
            f"certificate {certificate.serial[:8]}, role {UNATTENDED_ROLE})."
        )
    session = AgentSession(
        link, ui, capabilities_for(from_service), log, trust, admit=_admission(policy, ticket, ui)
    )
    try:
        reason = await session.run()
    except (SessionLost, LinkError, TimeoutError) as exc:
        ui.session_ended(str(exc))
        log.write(f"Unattended session over: {exc}")
        return 1
    else:
        ui.session_ended(session.customer_reason(reason))
    finally:
        await _stop_ui(ui)
        log.write("Log closed.")
        log.close()
        await link.close()
    return 0


def capabilities_for(from_service: bool) -> CapabilityRegistry:
    """The capabilities of an unattended session. Run by the service, which has no
    display and cannot reach the one of the person signed in, screen view and remote
    control say so in a sentence (``FROM_SERVICE``) instead of failing obscurely."""
    from agent.capabilities.base import CapabilityRegistry
    from agent.capabilities.registry import default_registry
    from agent.capabilities.screen.capture import unavailable_from_service

    registry = default_registry()
    if not from_service:
        return registry
    adapted = CapabilityRegistry()
    for name in registry.names():
        capability = registry.get(name)
        assert capability is not None
        if name in ("screen", "control"):
            capability = dataclasses.replace(capability, unavailable=unavailable_from_service)
        adapted.register(capability)
    return adapted


async def _start_ui(ui: CustomerUI, log: AgentLog) -> None:
    """A UI that reaches people through the service (agent.helper_ui) opens its link."""
    start = getattr(ui, "start", None)
    if start is None:
        return
    try:
        await start(log.write)
    except OSError as exc:
        log.write(f"The service's link to the helpers of the people signed in is unusable: {exc}")


async def _stop_ui(ui: CustomerUI) -> None:
    stop = getattr(ui, "stop", None)
    if stop is not None:
        await stop()


def _admission(policy: DevicePolicy, ticket: str, ui: CustomerUI) -> Admission:
    async def admit(
        session: AgentSession, certificate: Certificate | None
    ) -> tuple[str, str] | None:
        return await admission(session, certificate, policy, ticket, ui)

    return admit


async def admission(
    session: AgentSession,
    certificate: Certificate | None,
    policy: DevicePolicy,
    ticket: str,
    ui: CustomerUI,
) -> tuple[str, str] | None:
    """The owner's policy decides (module docstring, step 2): None lets the session go
    on; else ``(the technician's reason, the customer's)``."""
    terms = policy.unattended
    name = certificate.name if certificate else "an unverified technician"
    organisation = certificate.organisation if certificate else ""
    shown_name = safe_text(name, 100)
    if certificate is None:  # the pairing requires one; never let a gap through
        return (
            "Unattended access needs a certificate of this computer's organisation.",
            t("unattended.refused_never", name=shown_name),
        )
    if terms.mode == "never":
        return (
            f"This computer's policy never allows unattended access; {name} was refused. "
            "Ask someone at the computer to start a session with a code instead.",
            t("unattended.refused_never", name=shown_name),
        )
    if terms.mode in ("ask-deny", "ask-allow"):
        allow_on_silence = terms.mode == "ask-allow"
        seconds = terms.countdown_seconds if allow_on_silence else terms.answer_seconds
        question = UnattendedQuestion(
            name, organisation, ticket, terms.capabilities, seconds, allow_on_silence
        )
        allowed, answered = await session.gate.ask_unattended(question)
        if answered:
            session.audit.write(
                f"The person signed in {'allowed' if allowed else 'refused'} {name}. "
                "(Answered at this computer.)"
            )
        else:
            session.audit.write(
                f"Nobody answered within {seconds} seconds: the policy "
                f"({terms.mode}) {'lets' if allowed else 'does not let'} {name} in."
            )
        if not allowed and answered:
            return (
                f"The person at the device said no to {name}.",
                t("unattended.refused_no", name=shown_name),
            )
        if not allowed:
            return (
                f"Nobody at the device answered within {seconds} seconds, and its owner's "
                "policy denies unattended access then. Try again when someone is there.",
                t("unattended.refused_silence", name=shown_name, seconds=seconds),
            )
    session.gate.follow_policy(terms.capabilities)
    allowed_list = ", ".join(terms.capabilities) or "nothing"
    session.audit.write(
        f"Unattended session started: {name} ({organisation}) for ticket "
        f"{safe_text(ticket, 200)}; the owner's policy allows: {allowed_list}."
    )
    show = getattr(ui, "show_unattended", None)
    if show is not None:
        show(
            t(
                "unattended.banner",
                name=shown_name,
                organisation=safe_text(organisation, 100),
                ticket=safe_text(ticket, 200),
            )
        )
    return None


def _run_window(state: DeviceState, policy: DevicePolicy, args: argparse.Namespace) -> int:
    """The session on a worker thread, its window (question, banner) on this one."""
    import tkinter as tk

    from agent.i18n import CATALOG
    from agent.tk_ui import CustomerWindow, TkUI

    titles = {
        key.split(".")[1]: t(key)
        for key in CATALOG
        if key.startswith("cap.") and key.endswith(".title")
    }
    root = tk.Tk(className="puente-agent")
    status = {"code": 1}
    window = CustomerWindow(root, lambda _code: None, None, titles)
    window.show_request(t("unattended.waiting"))

    def session_thread() -> None:
        async def main() -> int:
            ui = TkUI(window, asyncio.get_running_loop())
            window.ui = ui
            return await run_unattended(
                state, policy, args.nameplate, args.ticket, args.ca_file, ui
            )

        try:
            status["code"] = asyncio.run(main())
        finally:
            window.session_over.set()
            # Nobody may be there to close the window: it goes by itself.
            window.post(lambda: _close_later(root))

    threading.Thread(target=session_thread, name="puente-unattended", daemon=True).start()
    root.mainloop()
    window.session_over.wait(5)
    return status["code"]


def _close_later(root: Any) -> None:
    root.after(3000, root.destroy)


def command_line(
    state_dir: Path,
    nameplate: str,
    ticket: str,
    ca_file: str | None,
    helpers_fd: int | None = None,
) -> list[str]:
    """How the device link starts this (the one-file build is its own interpreter)."""
    program = (
        [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "agent.cli"]
    )
    extra = ["--ca-file", ca_file] if ca_file else []
    if helpers_fd is not None:
        extra += ["--helpers-fd", str(helpers_fd)]
    return [
        *program,
        "unattended",
        "--state-dir",
        str(state_dir),
        "--nameplate",
        nameplate,
        "--ticket",
        ticket,
        *extra,
    ]


__all__ = [
    "UNATTENDED_ROLE",
    "admission",
    "capabilities_for",
    "command_line",
    "run_unattended",
    "unattended_main",
]
