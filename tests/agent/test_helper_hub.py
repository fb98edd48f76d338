"""The service's side of the signed-in user's helper (agent/helper_hub.py, agent/signed_in.py,
agent/helper_ui.py): who may be asked, and how a question, its answer and the banner
travel between an unattended session and the helpers.

Real parts: real Unix sockets (the kernel's SO_PEERCRED says who connected), real
local accounts made for the test (tests/support/local_users.py) whose processes
connect as themselves (tests/support/helper_client.py), real X display sockets the
test binds and hands to an account. The one double is ``loginctl``: a script on PATH
that answers from a table the test writes, because real loginctl needs systemd-logind,
which needs systemd as init, which this sandbox lacks (its real loginctl says so and
fails, which is the "no logind" case).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent import helper_wire as wire
from agent.consent import TrustedPath, UnattendedQuestion
from agent.errors import HubUnavailable
from agent.helper_hub import HelperHub, peer_credentials
from agent.helper_ui import HelperUI
from agent.signed_in import SignedInUsers
from agent.ui import SessionInfo
from tests.support.local_users import LocalUser, local_users, python_for_others, shared_folder
from tests.support.timeouts import scaled

CLIENT = Path(__file__).resolve().parents[1] / "support" / "helper_client.py"

#: A scripted loginctl: ``list-sessions`` prints the file ``list`` of its table folder,
#: ``show-session ID`` the file named ID (Key=Value lines), as logind's loginctl does.
LOGINCTL = """#!/bin/sh
table="{table}"
case "$1" in
  list-sessions) cat "$table/list" ;;
  show-session) [ -f "$table/$2" ] && cat "$table/$2" || exit 1 ;;
  *) exit 1 ;;
esac
"""

#: The real loginctl's answer where logind is not running.
NO_LOGIND = """#!/bin/sh
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
exit 1
"""


def scripted_loginctl(folder: Path, sessions: dict[str, dict[str, str | int]]) -> Path:
    """A loginctl in ``folder`` (put it on PATH) answering with ``sessions``."""
    table = folder / "sessions"
    table.mkdir(exist_ok=True)
    write_sessions(table, sessions)
    program = folder / "loginctl"
    program.write_text(LOGINCTL.format(table=table), encoding="utf-8")
    program.chmod(0o755)
    return program


def write_sessions(table: Path, sessions: dict[str, dict[str, str | int]]) -> None:
    for old in table.iterdir():
        old.unlink()
    listed = [
        f"{sid} {values['Uid']} user{values['Uid']} seat0 tty2" for sid, values in sessions.items()
    ]
    (table / "list").write_text("\n".join(listed) + "\n", encoding="utf-8")
    for sid, values in sessions.items():
        text = "".join(f"{key}={value}\n" for key, value in values.items())
        (table / sid).write_text(text, encoding="utf-8")


def desktop(uid: int, **changes: str) -> dict[str, str | int]:
    """An active local X11 session of a user, as logind shows it."""
    return {"Uid": uid, "Type": "x11", "Active": "yes", "Remote": "no", "Class": "user", **changes}


_LISTENING: list[socket.socket] = []


@pytest.fixture
def x11_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder of X display sockets (see :func:`x_display`), closed afterwards."""
    folder = tmp_path / "X11-unix"
    folder.mkdir()
    try:
        yield folder
    finally:
        while _LISTENING:
            _LISTENING.pop().close()


def x_display(folder: Path, number: int, owner: int) -> None:
    """A listening socket where an X server's would be, owned by ``owner``."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _LISTENING.append(server)
    server.bind(str(folder / f"X{number}"))
    server.listen()
    os.chown(folder / f"X{number}", owner, -1)


# The rule: logind first, else the X display's owner ------------------------------------


def test_logind_decides_when_it_answers(
    tmp_path: Path, x11_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x11 = x11_folder
    x_display(x11, 5, 1002)  # bob owns a display, but logind says he is not at it
    scripted_loginctl(
        tmp_path,
        {
            "c1": desktop(1001),
            "c2": desktop(1002, Type="tty"),
            "c3": desktop(1003, Active="no"),  # switched away: not at the screen
            "c4": desktop(120, Class="greeter"),  # the login screen's own account
            "c5": desktop(1005, Type="wayland", Remote="yes"),
            "c6": desktop(1006, Type="wayland"),
        },
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    rule = SignedInUsers(x11_sockets=x11)
    assert rule.logind_owners() == {1001, 1006}
    verdict = rule.check(1001, "")
    assert verdict.signed_in and verdict.how == "logind"
    refused = rule.check(1002, ":5")
    assert not refused.signed_in
    assert "no active graphical session on this computer (logind)" in refused.sentence


def test_without_logind_the_owner_of_the_named_x_display(
    tmp_path: Path, x11_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "loginctl").write_text(NO_LOGIND, encoding="utf-8")
    (tmp_path / "loginctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    x_display(x11_folder, 5, 4242)
    (x11_folder / "X7").write_text("not a socket", encoding="utf-8")
    rule = SignedInUsers(x11_sockets=x11_folder)
    assert rule.logind_owners() is None
    for display in (":5", ":5.0", "unix:5"):
        verdict = rule.check(4242, display)
        assert verdict.signed_in and verdict.how == "x11", display
    cases = {
        (4243, ":5"): "is not signed in at the display :5: it belongs to",
        (4242, ":6"): "names the display :6, which is not running",
        (4242, "otherhost:5"): "which is not a local X display",
        (4242, ""): "which is not a local X display",
        (4242, ":7"): "is not an X server's socket",
    }
    for (uid, display), sentence in cases.items():
        verdict = rule.check(uid, display)
        assert not verdict.signed_in and sentence in verdict.sentence, (uid, display, verdict)
    # No loginctl at all is the same as no logind.
    assert SignedInUsers("no-such-loginctl", x11_folder).check(4242, ":5").signed_in


# The hub: sockets, peer credentials, questions and the banner -------------------------


@asynccontextmanager
async def running_hub(rule: SignedInUsers) -> AsyncIterator[tuple[HelperHub, list[str]]]:
    folder = shared_folder("puente-run-")
    said: list[str] = []
    hub = HelperHub(folder / "puente-device-test.sock", said.append, rule)
    await hub.start()
    try:
        yield hub, said
    finally:
        while Helper.started:
            await Helper.started.pop().stop()
        await hub.close()
        assert not folder.exists()  # the service's folder goes with its socket


@asynccontextmanager
async def session_ui(hub: HelperHub) -> AsyncIterator[tuple[HelperUI, list[str]]]:
    """The unattended session's UI on its end of the hub's socket pair."""
    records: list[str] = []
    ui = HelperUI(hub.open_session().detach())
    await ui.start(records.append)
    try:
        yield ui, records
    finally:
        await ui.stop()


class Helper:
    """A scripted helper process run as ``user`` (None: this test process's uid)."""

    #: Every helper process started, stopped when the hub's test ends.
    started: list[Helper] = []

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.received: list[dict[str, Any]] = []
        Helper.started.append(self)

    @classmethod
    async def start(cls, user: LocalUser | None, path: Path, *args: str) -> Helper:
        python, env = python_for_others() if user else ([sys.executable], {})
        command = [*python, str(CLIENT), str(path), *args]
        process = await asyncio.create_subprocess_exec(
            *(user.argv(*command) if user else command),
            stdout=asyncio.subprocess.PIPE,
            env={**(user.env() if user else os.environ), **env},
        )
        return cls(process)

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next message of type ``kind`` (skipping others)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(scaled(timeout)):
            while True:
                line = await self.process.stdout.readline()
                assert line, f"the helper ended before a {kind}: {self.received}"
                message = json.loads(line)
                self.received.append(message)
                if message["type"] == kind:
                    return message

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def question(seconds: int = 10, allow_on_silence: bool = False) -> UnattendedQuestion:
    return UnattendedQuestion(
        "Ana Lopez", "Acme IT", "HD-1042", ("diagnostics",), seconds, allow_on_silence
    )


def test_another_users_helper_is_refused_the_signed_in_users_answers_and_ends(
    x11_folder: Path,
) -> None:
    """Rules 2, 3 and 5 with real accounts: bob names alice's display and is refused;
    alice's helper is asked, answers, sees the banner and ends the session from it."""

    async def scenario(alice: LocalUser, bob: LocalUser) -> None:
        x_display(x11_folder, 5, alice.uid)
        rule = SignedInUsers("no-such-loginctl", x11_folder)
        async with running_hub(rule) as (hub, said):
            intruder = await Helper.start(bob, hub.path, "--display", ":5", "--answer", "allow")
            refused = await intruder.next("refused")
            assert refused["reason"] == "not_signed_in"
            assert f"it belongs to {alice.name}" in refused["message"]
            assert await intruder.process.wait() == 0  # the hub closed it
            helper = await Helper.start(
                alice, hub.path, "--display", ":5", "--answer", "allow", "--end"
            )
            assert (await helper.next("welcome"))["user"] == alice.name
            assert hub.helpers == [alice.name]
            async with session_ui(hub) as (ui, records):
                assert await asyncio.wait_for(ui.ask_unattended(question()), scaled(10)) is True
                asked = await helper.next("question")
                assert asked["technician"] == "Ana Lopez"
                assert asked["capabilities"] == ["diagnostics"] and 8 <= asked["seconds"] <= 10
                ui.session_started(SessionInfo("Ana Lopez", True, "Acme IT", "HD-1042", "", "x"))
                banner = await helper.next("banner")
                assert banner == {"type": "banner", "technician": "Ana Lopez",
                                  "organisation": "Acme IT", "ticket": "HD-1042"}  # fmt: skip
                commands: list[str] = []

                async def collect(command: str) -> None:
                    commands.append(command)

                reading = asyncio.create_task(ui.run(collect))
                async with asyncio.timeout(scaled(10)):
                    while not commands:
                        await asyncio.sleep(0.02)
                reading.cancel()
                assert commands == ["end"]  # "End session" on alice's banner
                ui.session_ended("over")
                await helper.next("ended")
            await helper.stop()
        log = "\n".join(said)
        assert f"Refused the helper of {bob.name} (uid {bob.uid}" in log
        assert f"Accepted the helper of {alice.name} (uid {alice.uid}" in log
        assert f"{alice.name} (uid {alice.uid}) answered allow in their own session" in log
        assert f"{alice.name} (uid {alice.uid}) ended the unattended session" in log
        recorded = "\n".join(records)
        assert f"Asked through the helpers of the people signed in: {alice.name}." in recorded
        assert f"Answered by {alice.name} (uid {alice.uid}), signed in at this computer" in recorded
        assert f"{alice.name} (uid {alice.uid}) pressed End session on the banner" in recorded

    with local_users(2) as (alice, bob):
        asyncio.run(scenario(alice, bob))


def test_with_logind_only_an_active_graphical_session_counts_and_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules 1-3 with a scripted loginctl: alice in an active desktop is accepted
    without naming a display; bob with a text console only is refused; while alice has
    switched away from the screen she is not asked, and once back she is."""

    async def scenario(alice: LocalUser, bob: LocalUser) -> None:
        async with running_hub(SignedInUsers()) as (hub, said):
            helper = await Helper.start(alice, hub.path)
            await helper.next("welcome")
            intruder = await Helper.start(bob, hub.path, "--display", ":0")
            refused = await intruder.next("refused")
            assert "no active graphical session on this computer (logind)" in refused["message"]
            table = tmp_path / "sessions"
            write_sessions(table, {"c1": desktop(alice.uid, Active="no")})
            async with session_ui(hub) as (ui, records):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ui.ask_unattended(question(2)), scaled(2))
                assert "No signed-in person's helper is connected" in "\n".join(records)
                assert hub.helpers == [alice.name]  # still connected, not asked
                write_sessions(table, {"c1": desktop(alice.uid)})
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ui.ask_unattended(question(2)), scaled(2))
                shown = await helper.next("question")
                assert shown["id"] == 2  # the first one never reached her
                assert f"through the helpers of the people signed in: {alice.name}." in (
                    "\n".join(records)
                )
        assert f"Not asking the helper of {alice.name}" in "\n".join(said)

    with local_users(2) as (alice, bob):
        scripted_loginctl(tmp_path, {"c1": desktop(alice.uid), "c2": desktop(bob.uid, Type="tty")})
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        asyncio.run(scenario(alice, bob))


def test_nobody_connected_the_question_waits_for_whoever_signs_in(x11_folder: Path) -> None:
    """Rule 4, and a question that times out is closed on the helper's screen."""

    async def scenario() -> None:
        x_display(x11_folder, 3, os.geteuid())
        async with running_hub(SignedInUsers("no-such-loginctl", x11_folder)) as (hub, said):
            async with session_ui(hub) as (ui, records):
                asking = asyncio.create_task(ui.ask_unattended(question(4)))
                await asyncio.sleep(1)
                late = await Helper.start(None, hub.path, "--display", ":3", "--answer", "deny")
                shown = await late.next("question")
                assert 1 <= shown["seconds"] <= 3  # what is left, not the whole time
                assert await asyncio.wait_for(asking, scaled(5)) is False
                await late.stop()
                # Time up: the session's gate cancels the question, the helper is told.
                silent = await Helper.start(None, hub.path, "--display", ":3")
                await silent.next("welcome")
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ui.ask_unattended(question(5)), 1)
                closed = await silent.next("closed")
                assert closed["why"] == "time_up"
            text = "\n".join(records)
            assert "No signed-in person's helper is connected; the question waits" in text
            assert f"Answered by {_me()} (uid {os.geteuid()})" in text

    asyncio.run(scenario())


def test_the_first_answer_wins_and_a_stray_answer_grants_nothing(x11_folder: Path) -> None:
    async def scenario() -> None:
        x_display(x11_folder, 3, os.geteuid())
        async with running_hub(SignedInUsers("no-such-loginctl", x11_folder)) as (hub, _):
            first = await Helper.start(None, hub.path, "--display", ":3", "--answer", "allow")
            await first.next("welcome")
            reader, writer = await asyncio.open_unix_connection(str(hub.path))
            writer.write(wire.encode("hello", version=wire.VERSION, display=":3"))
            assert wire.parse(await reader.readline())["type"] == "welcome"
            async with session_ui(hub) as (ui, _):
                assert await ui.ask_unattended(question()) is True
                shown = wire.parse(await reader.readline())
                assert shown["type"] == "question"
                assert wire.parse(await reader.readline()) == {
                    "type": "closed", "id": shown["id"], "why": "answered"
                }  # fmt: skip
                await first.stop()
                # Too late for the first question, and no second is open yet: nothing.
                writer.write(wire.encode("answer", id=shown["id"], allow=False))
                second = asyncio.create_task(ui.ask_unattended(question()))
                shown_again = wire.parse(await reader.readline())
                assert shown_again["id"] != shown["id"]
                writer.write(wire.encode("answer", id=shown["id"], allow=False))  # stale
                await asyncio.sleep(0.3)
                assert not second.done()
                writer.write(wire.encode("answer", id=shown_again["id"], allow=False))
                assert await asyncio.wait_for(second, scaled(5)) is False
                # A malformed line closes that helper's connection.
                writer.write(b"{not json\n")
                assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
                writer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (wire.encode("answer", id=1, allow=True), "bad_hello"),
        (wire.encode("hello", version=99, display=":3"), "version"),
        (b"hello\n", "bad_hello"),
    ],
)
def test_a_helper_that_does_not_say_hello_properly_is_refused(
    x11_folder: Path, first: bytes, reason: str
) -> None:
    async def scenario() -> None:
        x_display(x11_folder, 3, os.geteuid())
        async with running_hub(SignedInUsers("no-such-loginctl", x11_folder)) as (hub, _):
            reader, writer = await asyncio.open_unix_connection(str(hub.path))
            writer.write(first)
            answer = wire.parse(await reader.readline())
            assert answer["type"] == "refused" and answer["reason"] == reason
            assert hub.helpers == []
            writer.close()

    asyncio.run(scenario())


def test_the_socket_folder_and_the_socket(tmp_path: Path) -> None:
    """Rule 1: 0755 folder of the service, 0666 socket; a folder others could write, or
    something else at the socket's path, is refused with a sentence."""

    async def scenario() -> None:
        folder = tmp_path / "run"
        hub = HelperHub(folder / "s.sock", print)
        await hub.start()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        assert stat.S_IMODE((folder / "s.sock").stat().st_mode) == 0o666
        await hub.close()
        assert not folder.exists()
        # A socket left by a service that was killed is replaced.
        folder.mkdir(mode=0o755)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(folder / "s.sock"))
        stale.close()
        hub = HelperHub(folder / "s.sock", print)
        await hub.start()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(folder / "s.sock"))
            assert peer_credentials(client)[1] == os.geteuid()
        await hub.close()
        folder.mkdir(mode=0o755)
        (folder / "s.sock").write_text("a file", encoding="utf-8")
        with pytest.raises(HubUnavailable, match="exists and is not a socket"):
            await HelperHub(folder / "s.sock", print).start()
        open_to_all = tmp_path / "open"
        open_to_all.mkdir()
        open_to_all.chmod(0o777)
        with pytest.raises(HubUnavailable, match="only it can write"):
            await HelperHub(open_to_all / "s.sock", print).start()

    asyncio.run(scenario())


def test_the_helpers_windows_join_the_sessions_trusted_path(x11_folder: Path) -> None:
    async def scenario() -> None:
        x_display(x11_folder, 3, os.geteuid())
        async with running_hub(SignedInUsers("no-such-loginctl", x11_folder)) as (hub, _):
            async with session_ui(hub) as (ui, _):
                path = TrustedPath()
                ui.attach_trusted_path(path)
                reader, writer = await asyncio.open_unix_connection(str(hub.path))
                writer.write(wire.encode("hello", version=wire.VERSION, display=":3"))
                await reader.readline()
                writer.write(wire.encode("windows", ids=[4194305, 4194310]))
                async with asyncio.timeout(scaled(5)):
                    while not path.windows:
                        await asyncio.sleep(0.02)
                assert path.windows == {4194305, 4194310}
                writer.close()

    asyncio.run(scenario())


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
