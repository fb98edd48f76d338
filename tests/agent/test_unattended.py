"""The consent gate in an unattended session (agent/consent.py rule 9, used by
agent/unattended.py): the question to whoever is signed in, on the trusted path, with
silence answered by the owner's policy; then the policy in place of the customer.

A scripted person at the computer (tests/support/scripted_ui.py) answers, says nothing,
or cannot be asked; the real capabilities and a real hash-chained log are used. The
whole flow with a relay, an enrolled device and the window is tests/e2e/test_unattended.py.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from agent.audit import AgentLog
from agent.capabilities.base import Capability
from agent.capabilities.registry import default_registry
from agent.consent import ConsentGate, UnattendedQuestion
from agent.errors import ConsentDeclined
from agent.i18n import set_language
from agent.ui import ConsoleUI, unattended_lines
from tests.support.scripted_ui import ScriptedUI


class PersonAtTheComputer(ScriptedUI):
    """Answers the unattended question with ``answer`` after ``delay`` seconds (None:
    this UI cannot ask anyone); records whether the trusted path was marked."""

    def __init__(self, answer: bool | None, delay: float = 0.0) -> None:
        super().__init__()
        self.answer, self.delay = answer, delay
        self.on_trusted_path: list[bool] = []
        self.gate: ConsentGate | None = None

    async def ask_unattended(self, question: UnattendedQuestion) -> bool | None:
        assert self.gate is not None
        self.on_trusted_path.append(self.gate.trusted_path.question_open)
        await asyncio.sleep(self.delay)
        return self.answer


def question(seconds: int, allow_on_silence: bool) -> UnattendedQuestion:
    return UnattendedQuestion(
        "Ana Lopez", "Acme IT", "HD-1042", ("diagnostics",), seconds, allow_on_silence
    )


def ask(person: PersonAtTheComputer, asked: UnattendedQuestion, log: Path) -> tuple[bool, bool]:
    audit = AgentLog(log)
    gate = person.gate = ConsentGate(person, audit)
    try:
        return asyncio.run(gate.ask_unattended(asked))
    finally:
        audit.close()


def capability(name: str) -> Capability:
    found = default_registry().get(name)
    assert found is not None
    return found


@pytest.mark.parametrize("allow_on_silence", [False, True])
@pytest.mark.parametrize("answer", [True, False])
def test_an_answer_decides_whatever_silence_would_mean(
    tmp_path: Path, answer: bool, allow_on_silence: bool
) -> None:
    person = PersonAtTheComputer(answer)
    assert ask(person, question(5, allow_on_silence), tmp_path / "log") == (answer, True)
    assert person.on_trusted_path == [True]  # remote input dropped while it is asked
    assert person.gate is not None and not person.gate.trusted_path.question_open


@pytest.mark.parametrize("allow_on_silence", [False, True])
def test_silence_is_the_policys_answer_when_the_time_is_up(
    tmp_path: Path, allow_on_silence: bool
) -> None:
    started = time.monotonic()
    person = PersonAtTheComputer(True, delay=30)  # would say yes, too late
    assert ask(person, question(1, allow_on_silence), tmp_path / "log") == (
        allow_on_silence,
        False,
    )
    assert 0.9 <= time.monotonic() - started < 10


def test_nobody_to_ask_denies_at_once_or_waits_out_the_countdown(tmp_path: Path) -> None:
    started = time.monotonic()
    assert ask(PersonAtTheComputer(None), question(2, False), tmp_path / "a") == (False, False)
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    assert ask(PersonAtTheComputer(None), question(2, True), tmp_path / "b") == (True, False)
    assert time.monotonic() - started >= 1.9  # the countdown still runs out first


def test_the_policy_answers_instead_of_the_customer(tmp_path: Path) -> None:
    person = PersonAtTheComputer(True)
    audit = AgentLog(tmp_path / "log")
    gate = ConsentGate(person, audit)
    gate.follow_policy(["diagnostics", "control"])
    assert gate.follows_policy

    async def scenario() -> None:
        auth = await gate.authorize(capability("diagnostics"))
        assert auth.active
        with pytest.raises(ConsentDeclined, match="does not allow screen in unattended"):
            await gate.authorize(capability("screen"))
        # Listed, but it needs screen, which the policy does not list.
        with pytest.raises(ConsentDeclined, match="needs screen"):
            await gate.authorize(capability("control"))
        with pytest.raises(ConsentDeclined, match="does not allow fixes"):
            await gate.authorize_run(capability("fixes"))
        # Stopped by the person at the computer: it stays stopped.
        assert gate.revoke("diagnostics")
        with pytest.raises(ConsentDeclined, match="stays stopped"):
            await gate.authorize(capability("diagnostics"))

    asyncio.run(scenario())
    audit.close()
    assert person.asked == []  # nobody was prompted for a capability
    text = (tmp_path / "log").read_text(encoding="utf-8")
    assert "Allowed by the owner's unattended policy: Diagnostics." in text
    assert "Refused by the owner's unattended policy: Screen view." in text


def test_the_console_asks_in_english_and_spanish_and_closed_input_is_nobody() -> None:
    asked = question(60, False)
    for language, expected in (("en", "If nobody answers within 60 seconds, the answer is no."),
                               ("es", "Si nadie responde en 60 segundos, la respuesta es no.")):  # fmt: skip
        set_language(language)
        try:
            assert unattended_lines(asked)[1] == expected
            assert "Ana Lopez (Acme IT" in unattended_lines(asked)[0]
        finally:
            set_language("en")

    async def answer(typed: str) -> bool | None:
        out = io.StringIO()
        console = ConsoleUI(io.StringIO(typed), out)
        answered = await console.ask_unattended(asked)
        if typed:  # let the console's reader see the end of input before the loop closes
            assert await console._lines.get() is None
        assert "Let them in? Type yes or no:" in out.getvalue()
        return answered

    assert asyncio.run(answer("yes\n")) is True
    assert asyncio.run(answer("no\n")) is False
    assert asyncio.run(answer("")) is None


def test_run_by_the_service_the_screen_says_it_is_not_available_from_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A system service has no display and cannot reach the one of the person signed in:
    screen view and remote control say so (before anyone is asked); in the foreground,
    the usual reasons stay (tests/e2e/test_user_helper.py sees it from the technician)."""
    from agent.capabilities.screen.capture import FROM_SERVICE, NO_DISPLAY
    from agent.unattended import capabilities_for

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for name in ("screen", "control"):
        found = capabilities_for(from_service=True).get(name)
        assert found is not None and found.unavailable is not None
        assert found.unavailable() == FROM_SERVICE
        usual = capabilities_for(from_service=False).get(name)
        assert usual is not None and usual.unavailable is not None
        assert usual.unavailable() == NO_DISPLAY
    assert capabilities_for(True).names() == capabilities_for(False).names()
    diagnostics = capabilities_for(True).get("diagnostics")
    assert diagnostics is not None and diagnostics.unavailable is None
    monkeypatch.setenv("DISPLAY", ":0")  # a service that can reach a display uses it
    screen = capabilities_for(True).get("screen")
    assert screen is not None and screen.unavailable is not None
    assert screen.unavailable() is None
