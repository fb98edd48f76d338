"""The customer's real Tk window on Xvfb, driven with xdotool (acceptance 1 of issue 8).

A real relay process, a real technician console process and the real agent in
window mode. The test is the customer: it looks at the screen (screenshots, saved
in the test's tmp dir for a person to check), finds buttons by their colour, and
clicks them with xdotool. What the window shows is read from the live widget tree
the agent dumps (``PUENTE_TK_SNAPSHOT``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent import tk_ui
from agent.capabilities.registry import default_registry
from tests.support.customer import Process
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation
from tests.support.xdisplay import (
    Rect,
    click_colour,
    count_colour,
    run_in_child,
    screenshot,
    wait_window,
    xvfb,
)

Shown = list[dict[str, Any]]

SCREEN_AVAILABLE = "screen" in default_registry().names()


def read_snapshot(path: Path) -> Shown:
    try:
        data: Shown = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return []


def wait_shown(path: Path, test: Callable[[Shown], bool], what: str, timeout: float = 20) -> Shown:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        shown = read_snapshot(path)
        if shown and test(shown):
            return shown
        time.sleep(0.1)
    raise AssertionError(f"the window never showed {what}: {read_snapshot(path)}")


def texts(shown: Shown, window: str | None = None) -> list[str]:
    return [w["text"] for w in shown if window is None or w["window"] == window]


def has(fragment: str, window: str | None = None) -> Callable[[Shown], bool]:
    return lambda shown: any(fragment in text for text in texts(shown, window))


def technician_console(relay: RelayProcess, token: str, *identity: str) -> Process:
    return Process(
        [sys.executable, "-m", "technician.cli", "--relay", relay.ws_url, "--token", token]
        + [*identity, "session", "--ticket", "HD-1042"]
        + ["--ticket-url", "https://desk.example/HD-1042"],
        stdin=True,
    )


def test_the_window_shows_who_asks_grants_on_allow_and_stop_ends_both_sides(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    snapshot = tmp_path / "window.json"
    token = relay_process.add_technician("Ana Technician")
    # The help desk's organisation certified Ana; the agent pins the organisation's key.
    organisation = make_organisation(tmp_path / "acme", "Acme IT")
    cert, key = organisation.technician("Ana Lopez", "ana")
    with xvfb() as display:
        tech = technician_console(relay_process, token, "--cert", str(cert), "--key", str(key))
        code = tech.expect(r"^code: (\S+)$").group(1)
        agent = Process(
            [sys.executable, "-m", "agent.cli", "--relay", relay_process.ws_url]
            + ["--org-key", str(organisation.public), "--log-dir", str(tmp_path / "logs"), code],
            env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot)},
        )
        main = wait_window(display, "Puente remote support")
        tech.expect(r"^Customer joined")
        sas = tech.lines[-1].split("Check code: ")[1].split(" - ")[0]

        # 1. Who is connecting, for which ticket, and the check code.
        shown = wait_shown(snapshot, has(f"Check code: {sas}"), "the check code")
        screenshot(display, shots / "1-session.png")
        assert has("✔ Verified: Ana Lopez, Acme IT")(shown)
        assert not has("NOT verified")(shown)
        assert has("Ticket: HD-1042 (https://desk.example/HD-1042)")(shown)
        assert has("Nothing. The technician can do nothing until you allow it.")(shown)

        # 2. The technician asks for diagnostics; the customer clicks Allow.
        out = tmp_path / "diag.json"
        tech.send(f"diagnostics {out}")
        dialog = wait_window(display, "Permission requested")
        shown = wait_shown(snapshot, has("Ana Lopez asks for: Diagnostics"), "the question")
        assert has("Passwords, files and personal documents are not collected.")(shown)
        screenshot(display, shots / "2-consent.png")
        click_colour(display, dialog, tk_ui.ALLOW_COLOUR)

        # Before anything leaves, the customer sees it and may untick items.
        review = wait_window(display, "Check what will be sent")
        shown = wait_shown(snapshot, has("Computer name", "Check what will be sent"), "the review")
        screenshot(display, shots / "3-review.png")
        click_colour(display, review, tk_ui.ALLOW_COLOUR)  # Send
        tech.expect(r"^ok diagnostics: written to")
        assert json.loads(out.read_text())["hostname"]
        shown = wait_shown(snapshot, has("• Diagnostics"), "diagnostics as allowed")
        screenshot(display, shots / "4-allowed.png")

        # 3. While the screen is shared, a banner and a red border are always visible.
        if SCREEN_AVAILABLE:
            share_screen(display, tech, snapshot, tmp_path, shots)

        # 4. Stop ends everything, on both sides: every permission is withdrawn at once,
        # then the satisfaction question (skipped here), then the session is over.
        click_colour(display, main, tk_ui.STOP_COLOUR)
        shown = wait_shown(snapshot, has("How would you rate this help"), "the rating question")
        assert has("Nothing. The technician can do nothing until you allow it.")(shown)
        screenshot(display, shots / "5b-rating.png")
        click_colour(display, main, tk_ui.DENY_COLOUR)  # Skip
        tech.expect(r"^ended: ")
        assert tech.wait(20) == 0
        wait_shown(snapshot, has("The session has ended."), "the end")
        shown = read_snapshot(snapshot)
        assert has("you ended the session")(shown)
        assert not has("Your screen is being shared")(shown)  # the banner is gone
        screenshot(display, shots / "6-ended.png")
        agent.kill()
    for name in ("1-session", "2-consent", "3-review", "4-allowed", "6-ended"):
        assert (shots / f"{name}.png").stat().st_size > 1000


def share_screen(display: str, tech: Process, snapshot: Path, tmp_path: Path, shots: Path) -> None:
    """The technician views the screen; the customer allows it; the indicator shows."""
    tech.send(f"screenshot {tmp_path / 'remote.png'}")
    dialog = wait_window(display, "Permission requested")
    click_colour(display, dialog, tk_ui.ALLOW_COLOUR)
    tech.expect(r"^ok screenshot")
    shown = wait_shown(snapshot, has("Your screen is being shared with Ana Lopez"), "the banner")
    screenshot(display, shots / "5-sharing.png")
    border = [w for w in shown if w["class"] == "Border"]
    assert border and border[0]["bg"] == tk_ui.BORDER_SHARING
    top_strip = Rect(0, 0, 1280, 40)
    assert count_colour(display, tk_ui.BANNER_COLOUR, top_strip) > 1000


def settle(root: Any, condition: Callable[[], bool]) -> None:
    """Let Tk draw until ``condition`` holds (the X server paints asynchronously)."""
    deadline = time.monotonic() + scaled(5)
    while True:
        root.update()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the window did not show it in time")
        time.sleep(0.05)


def test_the_indicator_follows_the_granted_capabilities() -> None:
    """The window's hook on its own: banner for view, another text for control, gone
    when both stop (the test above shows it for real with a shared screen)."""
    with xvfb() as display:
        run_in_child(display, "tests.agent.test_window", "indicator_scenario")


def indicator_scenario(display: str) -> None:
    import tkinter

    from agent.ui import SessionInfo

    root = tkinter.Tk()
    window = tk_ui.CustomerWindow(root, lambda code: None, None, {"screen": "Screen"})
    window.show_session(SessionInfo("Ana", True, "Example Org", "T-1", "", "1234 5678"))
    window.show_active(["screen"], {"screen": "Screen"})
    top = Rect(0, 0, 1280, 40)
    settle(root, lambda: count_colour(display, tk_ui.BANNER_COLOUR, top) > 1000)
    texts_now = [w["text"] for w in window.snapshot()]
    assert "Your screen is being shared with Ana" in texts_now
    assert "✔ Verified: Ana, Example Org" in texts_now
    assert window.border.cget("bg") == tk_ui.BORDER_SHARING
    window.show_active(["screen", "control"], {})
    root.update()
    assert "Ana can see your screen and control your mouse and keyboard" in [
        w["text"] for w in window.snapshot()
    ]
    window.show_active([], {})
    settle(root, lambda: count_colour(display, tk_ui.BANNER_COLOUR, top) == 0)
    assert window.border.cget("bg") == tk_ui.BORDER_IDLE
    root.destroy()


def test_the_window_speaks_spanish_on_a_spanish_system(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    from tests.agent.test_i18n import spanish_templates

    snapshot = tmp_path / "window.json"
    token = relay_process.add_technician("Ana Técnica")
    with xvfb() as display:
        tech = technician_console(relay_process, token)
        code = tech.expect(r"^code: (\S+)$").group(1)
        Process(
            [sys.executable, "-m", "agent.cli", "--relay", relay_process.ws_url]
            + ["--log-dir", str(tmp_path / "logs"), code],
            env={
                "DISPLAY": display,
                tk_ui.SNAPSHOT_ENV: str(snapshot),
                "PUENTE_LANG": "",
                "LANGUAGE": "",
                "LC_ALL": "",
                "LANG": "es_ES.UTF-8",
            },
        )
        main = wait_window(display, "Asistencia remota Puente")
        tech.expect(r"^Customer joined")
        tech.send("chat hola")
        tech.send(f"diagnostics {tmp_path / 'd.json'}")
        dialog = wait_window(display, "Permiso solicitado")
        shown = wait_shown(snapshot, has("Ana Técnica solicita: Diagnóstico"), "the question")
        screenshot(display, tmp_path / "es-consent.png")
        click_colour(display, dialog, tk_ui.DENY_COLOUR)
        tech.expect(r"^declined diagnostics")
        click_colour(display, main, tk_ui.STOP_COLOUR)
        shown += wait_shown(snapshot, has("¿Cómo valora esta ayuda"), "the rating question")
        click_colour(display, main, tk_ui.DENY_COLOUR)  # Omitir
        tech.expect(r"^ended: ")
        shown += wait_shown(snapshot, has("La sesión ha terminado."), "the end")
        screenshot(display, tmp_path / "es-ended.png")

    templates = spanish_templates()
    dynamic = ("Ana Técnica", "HD-1042", "hola")
    lines = {
        line.strip().lstrip("⚠✔• ").strip()
        for widget in shown
        if widget["class"] not in ("Border", "Entry")
        for line in widget["text"].splitlines()
        if line.strip()
    }
    foreign = sorted(
        line
        for line in lines
        if not any(p.match(line) for p in templates)
        and not any(line.startswith(d) or line == d for d in dynamic)
        and not line.isdigit()
    )
    assert foreign == [], foreign
    assert len(lines) > 12 and "Detener y terminar la sesión" in lines
    assert "Técnico no verificado: Ana Técnica" in lines


def test_a_typed_code_that_is_wrong_gets_a_clear_error_and_a_retry(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    from tests.support.xdisplay import xdotool

    snapshot = tmp_path / "window.json"
    with xvfb() as display:
        Process(
            [sys.executable, "-m", "agent.cli", "--relay", relay_process.ws_url]
            + ["--log-dir", str(tmp_path / "logs")],
            env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot)},
        )
        main = wait_window(display, "Puente remote support")
        wait_shown(snapshot, has("Session code from your technician:"), "the code field")
        xdotool(display, "windowfocus", "--sync", main)  # the code field has the focus
        xdotool(display, "type", "12")
        click_colour(display, main, tk_ui.CONNECT_COLOUR)
        wait_shown(snapshot, has("12 is not a session code"), "the format error")
        xdotool(display, "type", "3456789")
        click_colour(display, main, tk_ui.CONNECT_COLOUR)
        shown = wait_shown(snapshot, has("That session code does not exist"), "the relay's answer")
        screenshot(display, tmp_path / "unknown-code.png")
        assert has("Try again")(shown)
        assert {"123456789"} <= set(texts(shown))  # what they typed is kept to correct


def test_the_rating_in_the_window_gives_score_and_comment() -> None:
    with xvfb() as display:
        run_in_child(display, "tests.agent.test_window", "rating_scenario")


def rating_scenario(display: str) -> None:
    import tkinter

    root = tkinter.Tk()
    window = tk_ui.CustomerWindow(root, lambda code: None, None, {})
    answers: list[tuple[int, str] | None] = []
    window.ask_rating(answers.append)
    root.update()
    widgets = list(walk(root))
    four = next(w for w in widgets if w.winfo_class() == "Radiobutton" and w.cget("text") == "4")
    four.invoke()
    comment = [w for w in widgets if w.winfo_class() == "Entry"][-1]  # the rating's, last
    comment.insert(0, "quick and\x1b[31m kind")  # control characters never reach the ticket
    next(
        w for w in widgets if w.winfo_class() == "Button" and w.cget("text") == "Send rating"
    ).invoke()
    root.update()
    assert answers == [(4, "quick and [31m kind")], answers
    assert "Thank you for your rating." in [w["text"] for w in window.snapshot()]
    root.destroy()


def walk(widget: Any) -> Iterator[Any]:
    for child in widget.winfo_children():
        yield child
        yield from walk(child)


def test_a_download_named_after_the_nameplate_joins_with_six_digits_typed_in_the_window(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    """Issue 19: the agent the join page serves is called ``puente-agent-NNN``; its window
    asks only for the 6 digits the technician reads out (the one-file build does the
    same on standard input, tests/installers)."""
    from tests.support.xdisplay import xdotool

    snapshot = tmp_path / "window.json"
    token = relay_process.add_technician("Ana Technician")
    with xvfb() as display:
        tech = technician_console(relay_process, token)
        code = tech.expect(r"^code: (\S+)$").group(1)
        nameplate, secret = code.split("-")[0], "".join(code.split("-")[1:])
        named = tmp_path / "Downloads" / f"puente-agent-{nameplate}"
        named.parent.mkdir()
        named.write_text(
            f"#!{sys.executable}\nimport sys\nfrom agent.cli import main\nsys.exit(main())\n"
        )
        named.chmod(0o755)
        agent = Process(
            [str(named), "--relay", relay_process.ws_url, "--log-dir", str(tmp_path / "logs")],
            env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot), "PUENTE_LANG": "en"},
        )
        main = wait_window(display, "Puente remote support")
        label = f"Type the 6 digits your technician reads you, after {nameplate}-:"
        shown = wait_shown(snapshot, has(label), "the 6 digits label")
        assert f"{nameplate}-" in texts(shown)
        xdotool(display, "windowfocus", "--sync", main)
        xdotool(display, "key", "End")
        xdotool(display, "type", secret)
        click_colour(display, main, tk_ui.CONNECT_COLOUR)
        tech.expect(r"^Customer joined")
        sas = tech.lines[-1].split("Check code: ")[1].split(" - ")[0]
        wait_shown(snapshot, has(f"Check code: {sas}"), "the check code")
        screenshot(display, tmp_path / "joined-with-six-digits.png")
        tech.kill()
        agent.kill()
