"""The trusted path's parts: the gate's record of open questions, and the X11 query
of which window is under a point or has the focus (on a real Xvfb display)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.audit import AgentLog
from agent.capabilities.registry import default_registry
from agent.consent import ANSWERED_HERE, ConsentGate, TrustedPath
from tests.support.scripted_ui import ScriptedUI


def test_a_question_pauses_input_and_input_from_before_it_stays_stale() -> None:
    path = TrustedPath()
    assert path.input_allowed()
    before = path.generation
    with path.asking():
        assert path.question_open
        assert not path.input_allowed()
        with path.asking():  # a review inside a question: still open after the inner one
            pass
        assert not path.input_allowed()
    assert path.input_allowed()
    # Input that arrived before the question must not be injected after it.
    assert not path.input_allowed(before)
    assert path.input_allowed(path.generation)


def test_the_gate_marks_its_question_open_and_logs_who_answered(tmp_path: Path) -> None:
    seen: list[bool] = []

    class Customer(ScriptedUI):
        async def ask_consent(self, capability: object, detail: str) -> bool:
            seen.append(gate.trusted_path.question_open)
            return True

    log = AgentLog(tmp_path / "session.log")
    gate = ConsentGate(Customer({}), log)
    diagnostics = default_registry().get("diagnostics")
    assert diagnostics is not None
    asyncio.run(gate.authorize(diagnostics))
    assert seen == [True]
    assert not gate.trusted_path.question_open
    log.close()
    text = (tmp_path / "session.log").read_text(encoding="utf-8")
    assert f"You allowed: Diagnostics. {ANSWERED_HERE}" in text


def test_x11_finds_the_agents_window_under_a_point_and_with_the_focus() -> None:
    from tests.support.xdisplay import run_in_child, xvfb

    with xvfb() as display:
        run_in_child(display, "tests.agent.test_trusted_path", "x11_scenario")


def x11_scenario(display: str) -> None:
    import tkinter

    from agent.capabilities.screen.input import X11AgentWindows

    root = tkinter.Tk()
    root.geometry("300x200+100+100")
    other = tkinter.Toplevel(root)
    other.geometry("200x100+600+400")
    entry = tkinter.Entry(root)
    entry.pack()
    root.update()
    entry.focus_force()
    root.update()
    windows = X11AgentWindows.open()
    assert windows is not None
    ids = {root.winfo_id(), int(root.wm_frame(), 16)}
    assert windows.over((150, 150), ids)  # inside the agent's window
    assert not windows.over((650, 420), ids)  # another window
    assert not windows.over((1000, 700), ids)  # the bare desktop
    assert windows.focused(ids)
    assert not windows.over((150, 150), set())  # nothing named: nothing refused
    other.focus_force()
    root.update()
    assert not windows.focused(ids)
    windows.close()
    root.destroy()
