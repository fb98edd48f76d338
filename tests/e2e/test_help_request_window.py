"""Issue 17, acceptance 1 for the window: a customer asks for help from the agent's
window (no code), with a real relay, a real Request Tracker and a certified technician
taking the request with ``puente-tech queue accept``; the session then runs in the same
window with no code typed. Also: Cancel request and the close box withdraw a queued
request (the ticket says so); a category list that is missing or not signed by the
pinned key, an unknown category and an over-long description each get a clear
sentence, and nothing is filed; an agent without a pinned key offers no "Get help".

The test is the customer, as in tests/agent/test_window.py: it types with xdotool,
finds buttons by their colour, reads the live widget tree (``PUENTE_TK_SNAPSHOT``) and
takes a screenshot of each screen (set ``PUENTE_SCREENSHOTS_DIR`` to keep them; the
ones in docs/images/gethelp-*.png come from this test).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from pathlib import Path

from agent import tk_help, tk_ui
from relay.sqlite_store import DATABASE_NAME
from tests.agent.test_window import has, read_snapshot, texts, wait_shown
from tests.e2e.test_help_request import (  # noqa: F401  (org and rt are fixtures)
    DESCRIPTION,
    org,
    relay_cli,
    relay_for,
    rt,
    rt_search,
    rt_ticket_of,
    set_up_desk,
    tech_process,
    tech_run,
)
from tests.e2e.test_self_help import DESCRIPTION as DISK_FULL
from tests.e2e.test_self_help import FILLER, TAMPERED_ID, UNSIGNED_ID, full_disk  # noqa: F401
from tests.e2e.test_self_help import set_up as publish_self_help
from tests.support.customer import Process
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.trust_fixtures import Organisation, tech_cli
from tests.support.xdisplay import (
    click_colour,
    close_window,
    grab,
    wait_window,
    xdotool,
    xvfb,
)

TITLE = "Puente remote support"
REVIEW = "Check what will be sent"
REFERENCE = re.compile(r"\(reference ([0-9a-f]{8})\)")


def agent_window(
    display: str, relay_url: str, snapshot: Path, tmp_path: Path, *extra: str, lang: str = "en"
) -> Process:
    """The real agent in window mode (no code), its widget tree dumped to ``snapshot``."""
    return Process(
        [sys.executable, "-m", "agent.cli", "--relay", relay_url]
        + ["--log-dir", str(tmp_path / "logs"), *extra],
        env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot), "PUENTE_LANG": lang},
    )


def armed(display: str, snapshot: Path, title: str, button: str) -> str:
    """The window titled ``title``, once its ``button`` takes a press (until then what
    lies under its rectangle, such as a button of the same colour, may show through)."""
    window = wait_window(display, title)
    wait_shown(
        snapshot,
        lambda shown: any(
            w["window"] == title and w["text"] == button and w["state"] == "normal" for w in shown
        ),
        f"{button!r} armed in {title!r}",
    )
    return window


def armed_review(display: str, snapshot: Path) -> str:
    return armed(display, snapshot, REVIEW, "Send nothing")


def pictures(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PUENTE_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def picture(display: str, path: Path) -> None:
    """A screenshot cut to the windows on it (the rest of Xvfb's screen is black)."""
    import mss.tools
    import numpy as np

    rgb, width, height = grab(display)
    pixels = np.frombuffer(rgb, np.uint8).reshape(height, width, 3)
    lit = np.argwhere(pixels.any(axis=2))
    (top, left), (bottom, right) = lit.min(0), lit.max(0) + 1
    cropped = np.ascontiguousarray(pixels[top:bottom, left:right])
    mss.tools.to_png(cropped.tobytes(), (int(right - left), int(bottom - top)), output=str(path))


def text_box(snapshot: Path) -> str:
    """What the description box holds now."""
    return next((w["text"] for w in read_snapshot(snapshot) if w["class"] == "Text"), "")


def test_a_request_filed_from_the_window_reaches_rt_and_the_session_runs_in_it_with_no_code(
    org: Organisation,  # noqa: F811
    rt: RequestTracker,  # noqa: F811
    tmp_path: Path,
) -> None:
    shots = pictures(tmp_path)
    snapshot = tmp_path / "window.json"
    relay = relay_for(rt, tmp_path)
    try:
        tokens = set_up_desk(relay, org, tmp_path)
        for token in tokens.values():
            tech_run(relay.ws_url, token, "availability", "available")
        with xvfb() as display, RecordingProxy("127.0.0.1", relay.port) as agent_side:
            agent = agent_window(
                display, agent_side.url, snapshot, tmp_path, "--org-key", str(org.public)
            )
            main = wait_window(display, TITLE)
            wait_shown(snapshot, has("No session code? Ask your help desk"), "Get help")
            picture(display, shots / "gethelp-1-start.png")

            # The form: a sentence, its count, the organisation's verified kinds of problem.
            click_colour(display, main, tk_help.HELP_COLOUR)
            shown = wait_shown(snapshot, has("Describe the problem in one sentence:"), "the form")
            assert {"Printers", "Network"} <= set(texts(shown))
            assert has("0 of 500 characters")(shown)
            xdotool(display, "windowfocus", "--sync", main)  # the box has the focus
            xdotool(display, "type", "--delay", "5", DESCRIPTION)
            xdotool(display, "key", "Tab", "space")  # the first kind: Printers
            wait_shown(snapshot, has(f"{len(DESCRIPTION)} of 500 characters"), "the count")
            assert text_box(snapshot) == DESCRIPTION
            picture(display, shots / "gethelp-2-form.png")
            click_colour(display, main, tk_ui.CONNECT_COLOUR)  # Send request

            # The summary that would go with it, in the window's review screen.
            review = armed_review(display, snapshot)
            shown = wait_shown(snapshot, has("would go with your request", REVIEW), "the review")
            summary = [w["text"] for w in shown if w["class"] == "Checkbutton"]
            assert summary, shown
            picture(display, shots / "gethelp-3-review.png")
            click_colour(display, review, tk_ui.ALLOW_COLOUR)  # Send

            # Waiting, with the place and the estimate.
            shown = wait_shown(
                snapshot, has("You are number 1 in the queue; estimated wait:"), "the place"
            )
            assert has("Waiting for a technician")(shown) and has("Cancel request")(shown)
            picture(display, shots / "gethelp-4-waiting.png")
            listing = json.loads(
                tech_run(relay.ws_url, tokens["Paco Printers"], "queue", "list", "--json")
            )
            [item] = listing["requests"]
            assert item["offered_to_you"] and item["description"] == DESCRIPTION
            request_id = item["request_id"]
            assert has(f"reference {request_id[:8]}")(read_snapshot(snapshot))

            # A certified technician takes it: the session runs here, with no code.
            cert, key = org.technician("Paco Printers", "paco")
            tech = tech_process(
                relay.ws_url,
                tokens["Paco Printers"],
                *("--cert", str(cert), "--key", str(key)),
                *("queue", "accept", "--next"),
            )
            tech.expect(r"^Accepted " + request_id)
            tech.expect(r"^Customer joined\. Check code: ", timeout=60)
            check_code = tech.lines[-1].split("Check code: ")[1].split(" - ")[0]
            shown = wait_shown(snapshot, has(f"Check code: {check_code}"), "the check code")
            assert has("✔ Verified: Paco Printers, Acme IT")(shown)
            assert not has("Waiting for a technician")(shown)  # the session replaced it
            picture(display, shots / "gethelp-5-session.png")

            # The same questions as with a code.
            out = tmp_path / "diag.json"
            tech.send(f"diagnostics {out}")
            dialog = wait_window(display, "Permission requested")
            wait_shown(snapshot, has("Paco Printers asks for: Diagnostics"), "the question")
            click_colour(display, dialog, tk_ui.ALLOW_COLOUR)
            click_colour(display, wait_window(display, REVIEW), tk_ui.ALLOW_COLOUR)
            tech.expect(r"^ok diagnostics: written to", timeout=60)

            # Stop, the rating, the end: as with a code.
            click_colour(display, main, tk_ui.STOP_COLOUR)
            wait_shown(snapshot, has("How would you rate this help"), "the rating question")
            click_colour(display, main, tk_ui.DENY_COLOUR)  # Skip
            tech.expect(r"^ended: ")
            assert tech.wait(30) == 0, tech.output + tech.read_stderr()
            wait_shown(snapshot, has("The session has ended."), "the end")
            shown = read_snapshot(snapshot)
            recorded = agent_side.recorded
            agent.kill()
        assert not any(re.search(r"\d{3}-\d{3}-\d{3}", text) for text in texts(shown))
        hostname = json.loads(out.read_text())["hostname"]
        assert len(hostname) < 4 or hostname.encode() not in recorded, "content crossed"

        # The ticket carries the description, the category and the reviewed summary.
        wait_until(lambda: rt_ticket_of(rt, request_id) is not None, 40, "the RT ticket", 0.5)
        ticket = rt_ticket_of(rt, request_id)
        assert ticket is not None
        [opened] = rt.comments(ticket, kind="Create")
        assert f"Description: {DESCRIPTION}" in opened["text"]
        assert "Category: printing" in opened["text"]
        assert summary[0] in opened["text"]  # the line the customer saw and kept
        wait_until(
            lambda: any("accepted" in c["subject"] for c in rt.comments(ticket)),
            40,
            "the accepted comment",
            0.5,
        )
    finally:
        relay.stop()


def queued(
    display: str,
    relay: RelayProcess,
    acme: Organisation,
    tmp_path: Path,
    description: str,
    category: str = "printing",
) -> tuple[Process, str, Path, str]:
    """An agent whose form was filled in from the command line (``--request``), sent
    with no summary (Send nothing), now waiting: the process, its window, its snapshot
    and the request's reference."""
    snapshot = tmp_path / f"{description[:12].replace(' ', '-')}.json"
    agent = agent_window(
        display,
        relay.ws_url,
        snapshot,
        tmp_path,
        *("--org-key", str(acme.public), "--request", description, "--category", category),
    )
    main = wait_window(display, TITLE)
    wait_shown(snapshot, has(f"{len(description)} of 500 characters"), "the form")
    click_colour(display, main, tk_ui.CONNECT_COLOUR)  # Send request
    click_colour(display, armed_review(display, snapshot), tk_ui.DENY_COLOUR)  # Send nothing
    shown = wait_shown(snapshot, has("You are number 1 in the queue"), "the place")
    [reference] = [m.group(1) for text in texts(shown) if (m := re.search(REFERENCE, text))]
    return agent, main, snapshot, reference


def test_cancel_request_and_the_close_box_withdraw_and_the_ticket_says_so(
    org: Organisation,  # noqa: F811
    rt: RequestTracker,  # noqa: F811
    tmp_path: Path,
) -> None:
    shots = pictures(tmp_path)
    relay = relay_for(rt, tmp_path)
    try:
        set_up_desk(relay, org, tmp_path)  # everyone is away: requests wait
        with xvfb() as display:
            # Cancel request.
            agent, main, snapshot, cancelled = queued(display, relay, org, tmp_path, DESCRIPTION)
            click_colour(display, main, tk_ui.STOP_COLOUR)  # Cancel request
            shown = wait_shown(snapshot, has("You left the queue"), "the cancellation")
            assert has("your request was cancelled and your help desk was told")(shown)
            picture(display, shots / "gethelp-6-cancelled.png")
            close_window(display, main)
            assert agent.wait(20) == 0

            # The close box while waiting withdraws too.
            second, main, _, closed = queued(display, relay, org, tmp_path, "The scanner is silent")
            close_window(display, main)
            assert second.wait(20) == 0
        for reference in (cancelled, closed):
            wait_until(
                lambda r=reference: any(
                    "withdrawn" in c["subject"]
                    for ticket in rt_search(rt, f"puente request {r}")
                    for c in rt.comments(ticket)
                ),
                60,
                f"the withdrawal comment on request {reference}",
                0.5,
            )
        [ticket] = rt_search(rt, f"puente request {cancelled}")
        [opened] = rt.comments(ticket, kind="Create")
        assert "none attached" in opened["text"]  # Send nothing: no summary went
    finally:
        relay.stop()


def test_lists_that_cannot_be_verified_unknown_categories_and_long_descriptions_are_refused(
    org: Organisation,  # noqa: F811
    tmp_path: Path,
) -> None:
    from tests.agent.test_i18n import spanish_templates

    shots = pictures(tmp_path)
    relay = start_relay(tmp_path / "relay")
    try:
        with xvfb() as display:
            # No list at the relay: the help desk takes no requests from the agent yet.
            snapshot = tmp_path / "lists.json"
            agent = agent_window(
                display, relay.ws_url, snapshot, tmp_path, "--org-key", str(org.public)
            )
            main = wait_window(display, TITLE)
            click_colour(display, main, tk_help.HELP_COLOUR)
            shown = wait_shown(snapshot, has("Could not ask for help"), "the refusal")
            assert has("does not take requests from the agent yet")(shown)
            picture(display, shots / "gethelp-7-no-list.png")
            click_colour(display, main, tk_ui.DENY_COLOUR)  # Back to the code field
            wait_shown(snapshot, has("Session code from your technician:"), "the code field")

            # A list the pinned key did not sign (a relay renamed a category).
            set_tampered_categories(relay, org, tmp_path)
            click_colour(display, main, tk_help.HELP_COLOUR)
            shown = wait_shown(snapshot, has("is not signed by your organisation"), "refusal")
            assert not has("Printers")(shown) and not has("Call 555")(shown)
            picture(display, shots / "gethelp-8-unverified-list.png")
            agent.kill()

            # An unknown category from the command line, in Spanish.
            set_up_desk(relay, org, tmp_path)
            snapshot = tmp_path / "unknown.json"
            long_text = "La impresora " + "imprime páginas en blanco " * 24
            spanish = agent_window(
                display,
                relay.ws_url,
                snapshot,
                tmp_path,
                *("--org-key", str(org.public), "--request", long_text),
                *("--category", "plumbing"),
                lang="es",
            )
            main = wait_window(display, "Asistencia remota Puente")
            shown = wait_shown(snapshot, has("plumbing no es uno de los tipos"), "unknown kind")
            assert has("elija uno de: printing, network")(shown)
            # Too long: the count says so, and Send refuses with a sentence.
            count = len(" ".join(long_text.split()))
            assert count > 500 and has(f"{count} de 500 caracteres")(shown)
            xdotool(display, "windowfocus", "--sync", main)
            xdotool(display, "key", "Tab", "space")  # a kind that exists: Printers
            click_colour(display, main, tk_ui.CONNECT_COLOUR)
            shown = wait_shown(snapshot, has(f"Su descripción tiene {count} caracteres"), "refusal")
            assert has("acórtela a 500 o menos")(shown)
            assert text_box(snapshot) == long_text.strip()  # nothing typed is lost
            picture(display, shots / "gethelp-9-too-long-es.png")
            templates = spanish_templates()
            lines = {
                line.strip()
                for widget in shown
                if widget["class"] not in ("Text", "Radiobutton", "Border")
                for line in widget["text"].splitlines()
                if line.strip()
            }
            foreign = [line for line in lines if not any(p.match(line) for p in templates)]
            assert foreign == [], foreign
            spanish.kill()

            # Without a pinned key there is only the code.
            snapshot = tmp_path / "unpinned.json"
            unpinned = agent_window(display, relay.ws_url, snapshot, tmp_path)
            wait_window(display, TITLE)
            shown = wait_shown(snapshot, has("Session code from your technician:"), "the code")
            assert not has("Get help")(shown) and not has("No session code?")(shown)
            unpinned.kill()
        # Nothing was filed by any of it.
        assert filed_requests(relay) == 0
    finally:
        relay.stop()


def set_tampered_categories(
    relay: RelayProcess, organisation: Organisation, tmp_path: Path
) -> None:
    """Publish the organisation's list, then change a title in the relay's database, as
    a compromised relay could: the signature no longer matches."""
    listing = tmp_path / "tampered-categories.json"
    done = tech_cli(
        "org",
        "categories",
        "printing=Printers",
        "--org-key",
        str(organisation.key),
        "--out",
        str(listing),
    )
    assert done.returncode == 0, done.stderr
    relay_cli(relay, "categories", "set", str(listing))
    with sqlite3.connect(relay.data_dir / DATABASE_NAME) as db:
        changed = db.execute(
            "UPDATE categories SET document = replace(document, 'Printers', 'Call 555')"
        ).rowcount
    assert changed == 1


def filed_requests(relay: RelayProcess) -> int:
    with sqlite3.connect(relay.data_dir / DATABASE_NAME) as db:
        count: int = db.execute("SELECT count(*) FROM help_requests").fetchone()[0]
    return count


def test_a_transfer_shows_the_note_and_the_next_technician_s_session_runs_in_the_window(
    org: Organisation,  # noqa: F811
    tmp_path: Path,
) -> None:
    shots = pictures(tmp_path)
    relay = start_relay(tmp_path / "relay")
    try:
        tokens = set_up_desk(relay, org, tmp_path)
        for token in tokens.values():
            tech_run(relay.ws_url, token, "availability", "available")
        certified = {}
        for name, stem in (("Paco Printers", "paco-w"), ("Nina Network", "nina-w")):
            cert, key = org.technician(name, stem)
            certified[name] = ("--cert", str(cert), "--key", str(key))
        with xvfb() as display:
            agent, main, snapshot, _ = queued(display, relay, org, tmp_path, DESCRIPTION)
            first = tech_process(
                relay.ws_url,
                tokens["Paco Printers"],
                *certified["Paco Printers"],
                *("queue", "accept", "--next"),
            )
            first.expect(r"^Customer joined\. Check code: ", timeout=60)
            wait_shown(snapshot, has("✔ Verified: Paco Printers, Acme IT"), "Paco's session")
            first.send('transfer "Nina Network" --note "The printer is fine; the network is not"')
            first.expect(r"^ok transfer: transferred to Nina Network")
            assert first.wait(60) == 0, first.output + first.read_stderr()
            # Waiting again, with the note (the rating comes at the end of the last one).
            shown = wait_shown(snapshot, has("(note: The printer is fine"), "the note")
            assert has("Waiting for a technician")(shown)
            assert not has("Paco Printers")(shown)  # the first session's screen is gone
            picture(display, shots / "gethelp-10-transferred.png")
            second = tech_process(
                relay.ws_url,
                tokens["Nina Network"],
                *certified["Nina Network"],
                *("queue", "accept", "--next"),
            )
            second.expect(r"^Customer joined\. Check code: ", timeout=60)
            check_code = second.lines[-1].split("Check code: ")[1].split(" - ")[0]
            shown = wait_shown(snapshot, has(f"Check code: {check_code}"), "Nina's check code")
            assert has("✔ Verified: Nina Network, Acme IT")(shown)
            assert len([w for w in shown if w["text"].startswith("Check code:")]) == 1
            second.send("end")
            wait_shown(snapshot, has("How would you rate this help"), "the rating")
            click_colour(display, main, tk_ui.DENY_COLOUR)  # Skip
            assert second.wait(60) == 0, second.output + second.read_stderr()
            wait_shown(snapshot, has("The session has ended."), "the end")
            agent.kill()
    finally:
        relay.stop()


def test_self_help_in_the_window_offers_the_signed_fix_and_that_fixed_it_closes_the_request(
    org: Organisation,  # noqa: F811
    rt: RequestTracker,  # noqa: F811
    full_disk: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Acceptance 2 in the window: the known problem planted on a loop-mounted disk, the
    organisation's signed fix offered first (ranked by past cases; a tampered and an
    unsigned one never), run with the window's consent, "That fixed it" closes the
    request and the ticket, with no technician."""
    shots = pictures(tmp_path)
    relay = relay_for(rt, tmp_path)
    try:
        publish_self_help(relay, org, tmp_path, full_disk)
        with xvfb() as display:
            agent, main, snapshot, reference = queued(
                display, relay, org, tmp_path, DISK_FULL, "storage"
            )
            shown = wait_shown(snapshot, has("Try this first"), "the offers", timeout=60)
            offered = [w["text"] for w in shown if w["class"] == "Radiobutton"]
            assert len(offered) == 3, offered
            assert offered[0] == "Clear the full test disk (solved 3 of 4 past cases)"
            assert not any(TAMPERED_ID in text or UNSIGNED_ID in text for text in texts(shown))
            # The details of the one chosen (the best): the problem, the evidence found
            # here, what the fix does.
            assert has("For: a disk is nearly full")(shown) and has(f"{full_disk} is")(shown)
            assert has("Deletes the large filler file that fills the disk.")(shown)
            assert has("You are number 1 in the queue")(shown)  # the place is kept
            picture(display, shots / "gethelp-11-self-help.png")

            click_colour(display, main, tk_ui.ALLOW_COLOUR)  # Try this fix (the best)
            dialog = armed(display, snapshot, "Permission requested", "Allow")
            shown = wait_shown(
                snapshot, has("You chose to run: Fix: Clear the full test disk"), "the question"
            )
            assert has("Read the script")(shown)  # the script can be read first
            picture(display, shots / "gethelp-12-self-help-consent.png")
            click_colour(display, dialog, tk_ui.ALLOW_COLOUR)

            question = armed(display, snapshot, "After the fix", "That fixed it")
            shown = wait_shown(snapshot, has("removed the filler from"), "the fix's output")
            assert not (full_disk / FILLER).exists()
            picture(display, shots / "gethelp-13-did-it-work.png")
            click_colour(display, question, tk_ui.ALLOW_COLOUR)  # That fixed it
            shown = wait_shown(snapshot, has("Glad it is fixed"), "the request closed")
            assert not has("Cancel request")(shown)
            picture(display, shots / "gethelp-14-solved.png")
            close_window(display, main)
            assert agent.wait(20) == 0, agent.read_stderr()

        def tickets() -> list[int]:
            return rt_search(rt, f"puente request {reference}")

        wait_until(
            lambda: any(
                "Solved by self-help" in c["text"] for t in tickets() for c in rt.comments(t)
            ),
            60,
            "the self-help outcome on the RT ticket",
            0.5,
        )
        [ticket] = tickets()
        wait_until(
            lambda: rt.rest("GET", f"/ticket/{ticket}")[1].get("Status") == "resolved",
            30,
            "the ticket resolved",
            0.5,
        )
    finally:
        relay.stop()
