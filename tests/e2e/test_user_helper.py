"""The signed-in user of a device whose agent runs as a service (issue 18, unattended
access), end to end on loopback, as root:

* a real relay process; a real agent enrolled with ``--no-service``, then the service's
  own run command (``puente-agent service run --state-dir S --helper-socket P``, what
  the installed unit runs) supervised by the test, as root and without a display;
* a real local account made for the test, signed in at a real X display (Xvfb run as
  that account, so the display's socket is theirs, as a desktop's is), running the real
  ``puente-agent user-helper`` as itself; a second account whose helper names that same
  display;
* the real technician CLI (``puente-tech connect DEVICE --ticket T``).

This sandbox has no systemd-logind (its loginctl says so), so the service applies the
other rule: the owner of the X display the helper names (agent/signed_in.py; the logind
rule is tested with a scripted loginctl in tests/agent/test_helper_hub.py).

The other account cannot run this venv's interpreter when it lives in /root (0700):
then the system's interpreter of the same version runs the same code
(tests/support/local_users.py, ``python_for_others``).

Set PUENTE_DOC_IMAGES=docs/images to keep the pictures for the documentation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.audit import verify_log
from agent.tk_ui import ALLOW_COLOUR
from tests.e2e.test_unattended import (
    TICKET,
    certify,
    connect,
    end_session_from_the_banner,
    finish,
    policy_file,
    wait_for,
)
from tests.support.device_fixtures import enrol_argv, enrol_in_foreground, enrolment_token
from tests.support.local_users import LocalUser, local_users, python_for_others, shared_folder
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation
from tests.support.xdisplay import click_colour, need_x_tools, screenshot, start_xvfb, wait_window

#: How long the person signed in has to answer (the policy's answer_seconds).
ANSWER_SECONDS = int(scaled(10))


class Service:
    """``puente-agent service run`` for an enrolled state folder, its output collected."""

    def __init__(self, state: Path, socket: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "service", "run", "--state-dir", str(state),
             "--helper-socket", str(socket)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**env, "PUENTE_LANG": "en"},
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        wait_for(lambda: text in self.output, scaled(timeout), f"the service to say {text!r}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=scaled(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=scaled(10))
        assert self.process.stdout is not None
        self.process.stdout.close()


def helper_argv(user: LocalUser, socket: Path) -> tuple[list[str], dict[str, str]]:
    python, env = python_for_others()
    return user.argv(*python, "-m", "agent.cli", "user-helper", "--socket", str(socket)), env


@contextmanager
def signed_in_at_a_display(user: LocalUser) -> Iterator[str]:
    """Xvfb run as ``user``: a display of theirs, as a desktop session has."""
    need_x_tools()
    proc, display = start_xvfb(run_as=user.argv(), env=user.env())
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(10))


def keep_picture(picture: Path) -> None:
    folder = os.environ.get("PUENTE_DOC_IMAGES")
    if folder:
        shutil.copy(picture, Path(folder) / picture.name)


def test_the_person_signed_in_answers_in_their_own_desktop(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    relay = relay_process
    acme = make_organisation(tmp_path / "org", "Acme IT")
    cert, key = certify(acme, "Ana Lopez", "ana", "unattended")
    policy = policy_file(
        acme,
        tmp_path,
        f'mode = "ask-deny"\nanswer_seconds = {ANSWER_SECONDS}\n'
        'capabilities = ["diagnostics", "screen"]\n',
    )
    token = relay.add_technician("Ana desk")
    state = tmp_path / "state"
    enrolled, _ = enrol_in_foreground(
        enrol_argv(relay.ws_url, acme.public, state, "--no-service", "--yes"),
        enrolment_token(
            relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(policy)
        ),
    )
    enrolled.terminate()  # enrolled; from now on the service's own command runs it
    enrolled.communicate(timeout=scaled(20))
    device_id = json.loads((state / "device.json").read_text())["device_id"]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    run = shared_folder("puente-run-")
    socket = run / "puente-device-test.sock"
    processes: list[subprocess.Popen[str]] = []
    shown: Path | None = None
    service = Service(state, socket)
    try:
        with local_users(2) as (alice, bob), signed_in_at_a_display(alice) as display:
            service.wait_for(f"connect at {socket}")
            service.wait_for("Online:")
            shown = shared_folder("puente-helper-", owner=alice)
            snapshot = shown / "helper.json"
            argv, env = helper_argv(alice, socket)
            helper = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=alice.home,
                env=alice.env(DISPLAY=display, PUENTE_LANG="en", PUENTE_TK_SNAPSHOT=str(snapshot),
                              **env),
            )  # fmt: skip
            processes.append(helper)
            service.wait_for(f"Accepted the helper of {alice.name} (uid {alice.uid}")

            # Bob is not signed in at that display: his helper is refused, in Spanish.
            argv, env = helper_argv(bob, socket)
            intruder = subprocess.run(
                argv, capture_output=True, text=True, cwd=bob.home, timeout=scaled(60),
                env=bob.env(DISPLAY=display, PUENTE_LANG="es", **env),
            )  # fmt: skip
            assert intruder.returncode == 1, intruder
            assert "El servicio Puente de este equipo no aceptó este asistente" in intruder.stderr
            assert "pertenece" not in intruder.stderr  # the service's detail stays English
            assert f"it belongs to {alice.name}" in intruder.stderr
            service.wait_for(f"Refused the helper of {bob.name} (uid {bob.uid}")

            # 1. Alice allows; the banner is on her screen; the screen is not available.
            technician = connect(relay.ws_url, token, cert, key, device_id)
            processes.append(technician)  # type: ignore[arg-type]
            wait_for(
                lambda: snapshot.exists() and "(Acme IT, verified)" in snapshot.read_text(),
                scaled(30),
                "the question in alice's desktop",
            )
            assert f"within {ANSWER_SECONDS} seconds, the answer is no" in snapshot.read_text()
            wait_for(lambda: ALLOW_COLOUR in snapshot.read_text(), scaled(10), "Allow armed")
            keep_picture(screenshot(display, pictures / "user-helper-question.png"))
            click_colour(display, wait_window(display, "Unattended access request"), ALLOW_COLOUR)
            assert technician.stdout is not None and technician.stdin is not None
            while json.loads(technician.stdout.readline() or "{}").get("event") != "paired":
                assert technician.poll() is None, technician.stderr
            wait_for(
                lambda: "Unattended session: Ana Lopez (Acme IT)" in snapshot.read_text(),
                scaled(20),
                "the banner in alice's desktop",
            )
            time.sleep(0.5)  # the next paint, for the picture
            keep_picture(screenshot(display, pictures / "user-helper-banner.png"))
            banner = [
                i
                for i in json.loads(snapshot.read_text())
                if i["text"].startswith("Unattended session:")
            ]
            assert banner and banner[0]["bg"] == "#4a148c"
            diagnostics = tmp_path / "diag.json"
            technician.stdin.write(f"diagnostics {diagnostics}\nscreenshot {tmp_path / 's.png'}\n")
            technician.stdin.flush()
            results = [json.loads(technician.stdout.readline()) for _ in range(2)]
            assert diagnostics.exists(), results
            assert "not available from the service on this computer" in json.dumps(results[1])
            end_session_from_the_banner(display)  # alice presses End session
            lines = []
            while '"event": "ended"' not in (lines[-1] if lines else ""):
                lines.append(technician.stdout.readline())
                assert lines[-1], lines
            status, out, err = finish(technician)
            assert status == 0, (lines, out, err)
            wait_for(lambda: "The unattended session is over." in snapshot.read_text()
                     or snapshot.read_text() == "[]", scaled(20), "the banner to go")  # fmt: skip
            assert "Unattended session:" not in snapshot.read_text()

            # 2. Nobody answers: denied when the time is up, and alice's window says so.
            wait_for(lambda: snapshot.read_text() == "[]", scaled(20), "the window to go")
            started = time.monotonic()
            technician = connect(relay.ws_url, token, cert, key, device_id)
            processes.append(technician)  # type: ignore[arg-type]
            wait_for(lambda: "(Acme IT, verified)" in snapshot.read_text(), scaled(30), "asked")
            status, out, err = finish(technician)
            took = time.monotonic() - started
            assert status == 3, (out, err)
            assert f"Nobody at the device answered within {ANSWER_SECONDS} seconds" in err
            assert took >= ANSWER_SECONDS
            wait_for(
                lambda: (
                    "Nobody answered in time, so the technician was not let in."
                    in snapshot.read_text()
                ),
                scaled(20),
                "the time-up sentence in alice's window",
            )
            assert "Allow" not in snapshot.read_text()  # the question is gone
            helper.terminate()
            helper.communicate(timeout=scaled(20))
    finally:
        if shown is not None:
            shutil.rmtree(shown, ignore_errors=True)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
        service.stop()
        shutil.rmtree(run, ignore_errors=True)

    log = (state / "unattended.log").read_text(encoding="utf-8")
    assert verify_log(state / "unattended.log").ok
    assert f"Asked through the helpers of the people signed in: {alice.name}." in log
    assert f"Answered by {alice.name} (uid {alice.uid}), signed in at this computer" in log
    assert "The person signed in allowed Ana Lopez." in log
    assert "Not available here: Screen view (The screen is not available from the service" in log
    assert f"{alice.name} (uid {alice.uid}) pressed End session on the banner." in log
    assert (
        f"Nobody answered within {ANSWER_SECONDS} seconds: the policy (ask-deny) does not let "
        "Ana Lopez in" in log
    )
    assert log.count(f"ticket {TICKET}") >= 2
    output = service.output
    assert f"{alice.name} (uid {alice.uid}) answered allow in their own session." in output
    assert f"{alice.name} (uid {alice.uid}) ended the unattended session." in output


def test_no_helper_connected_the_console_rule_applies(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    """Without any helper, "ask, deny on no answer" denies when the time is up (the
    question waited for someone to sign in), and "ask, allow after countdown" lets the
    technician in when the countdown runs out, as at a console nobody answers."""
    relay = relay_process
    acme = make_organisation(tmp_path / "org", "Acme IT")
    cert, key = certify(acme, "Ana Lopez", "ana", "unattended")
    token = relay.add_technician("Ana desk")
    for mode, expected_status in (("ask-deny", 3), ("ask-allow", 0)):
        folder = tmp_path / mode
        folder.mkdir()
        policy = policy_file(
            acme, folder, f'mode = "{mode}"\nanswer_seconds = 5\ncountdown_seconds = 5\n'
        )
        state = folder / "state"
        enrolled, _ = enrol_in_foreground(
            enrol_argv(relay.ws_url, acme.public, state, "--no-service", "--yes"),
            enrolment_token(
                relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(policy)
            ),
        )
        enrolled.terminate()
        enrolled.communicate(timeout=scaled(20))
        device_id = json.loads((state / "device.json").read_text())["device_id"]
        run = shared_folder("puente-run-")
        service = Service(state, run / "device.sock")
        try:
            service.wait_for("Online:")
            started = time.monotonic()
            status, out, err = finish(
                connect(relay.ws_url, token, cert, key, device_id), "status\n"
            )
            took = time.monotonic() - started
        finally:
            service.stop()
            shutil.rmtree(run, ignore_errors=True)
        assert status == expected_status, (mode, out, err)
        assert took >= 5, mode
        log = (state / "unattended.log").read_text(encoding="utf-8")
        assert "No signed-in person's helper is connected; the question waits" in log, mode
        assert "Asked the person signed in, through the helpers of: nobody" in service.output
