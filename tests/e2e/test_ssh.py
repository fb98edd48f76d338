"""A real SSH session inside the tunnel: real relay, real agent, real OpenSSH clients.

Each test runs ``puente-tech session --json`` (the technician's console) and the real
agent answering as a scripted customer, through a relay process on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.customer import Process, ScriptedCustomer
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

OPENSSH = ("ssh", "scp", "sftp", "rsync")
needs_openssh = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in OPENSSH),
    reason="needs Debian's openssh-client and rsync (apt-get install openssh-client rsync)",
)


class Console:
    """``puente-tech --json session``: send a command, get its one result record."""

    def __init__(self, relay_url: str, token: str, ticket: str = "HD-55") -> None:
        self.process = Process(
            [
                sys.executable,
                "-m",
                "technician.cli",
                "--relay",
                relay_url,
                "--token",
                token,
                "--json",
                "session",
                "--ticket",
                ticket,
            ],
            stdin=True,
        )
        self.code = json.loads(self.process.expect(r'"event": "code"').string)["code"]

    def paired(self) -> None:
        self.process.expect(r'"event": "paired"')

    def run(self, line: str, timeout: float = 30) -> dict[str, Any]:
        name = line.split()[0]
        self.process.send(line)
        record = json.loads(self.process.expect(rf'^\{{"command": "{name}"', timeout).string)
        return record

    def end(self) -> None:
        assert self.run("end")["status"] == "ok"
        assert self.process.wait() == 0


def customer_for(
    console: Console,
    relay_url: str,
    logs: Path,
    answers: dict[str, str],
    folder: Path | None = None,
) -> ScriptedCustomer:
    customer = ScriptedCustomer(
        relay_url,
        console.code,
        logs,
        answers=answers,
        choices={"Which folder": str(folder)} if folder else None,
    )
    console.paired()
    return customer


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def marked_content(size: int, marker: bytes) -> bytes:
    """Random bytes with ``marker`` planted every 64 KiB (so any leak would show it)."""
    data = bytearray(os.urandom(size))
    for at in range(0, size - len(marker), 65536):
        data[at : at + len(marker)] = marker
    return bytes(data)


def openssh(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=scaled(timeout),
    )


def agent_log(logs: Path) -> str:
    return "\n".join(p.read_text() for p in logs.glob("*.log"))


# 1. OpenSSH clients through `forward` ----------------------------------------------------


@needs_openssh
def test_openssh_clients_through_forward(relay_process: RelayProcess, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(100 * 1000 * 1000))
    small = tmp_path / "small.txt"
    small.write_text("small file for sftp and rsync\n")
    console = Console(relay_process.ws_url, relay_process.add_technician())
    logs = tmp_path / "logs"
    customer = customer_for(
        console, relay_process.ws_url, logs, {"Shell": "y", "Files": "y"}, shared
    )

    forward = console.run("forward 0")
    assert forward["status"] == "ok", forward
    assert forward["data"]["allowed"] == ["shell", "files"]
    config = forward["data"]["ssh_config"]
    assert forward["data"]["commands"]["ssh"] == f"ssh -F {config} puente"

    # ssh runs a command; StrictHostKeyChecking=yes and BatchMode=yes in the printed
    # config mean any host-key question would have failed the command instead.
    ran = openssh("ssh", "-F", config, "puente", "echo", "hello-through-puente")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hello-through-puente\n"
    assert "authenticity" not in ran.stderr

    # scp: 100 MB up and back down, hashes equal.
    up = openssh("scp", "-F", config, str(big), "puente:big.bin", timeout=120)
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.bin"
    down = openssh("scp", "-F", config, "puente:big.bin", str(back), timeout=120)
    assert down.returncode == 0, down.stderr
    assert sha256(shared / "big.bin") == sha256(big) == sha256(back)

    # sftp in batch mode, both ways.
    batch = tmp_path / "batch"
    batch.write_text(f"put {small} via-sftp.txt\nget via-sftp.txt {tmp_path / 'sftp-back.txt'}\n")
    sftp = openssh("sftp", "-F", config, "-b", str(batch), "puente")
    assert sftp.returncode == 0, sftp.stderr
    assert (shared / "via-sftp.txt").read_text() == small.read_text()
    assert (tmp_path / "sftp-back.txt").read_text() == small.read_text()

    # rsync over ssh, both ways (rsync runs as a command, so it needs shell); 10 MB is
    # many SSH windows, so the command pipes' flow control is exercised too.
    medium = tmp_path / "medium.bin"
    medium.write_bytes(os.urandom(10 * 1000 * 1000))
    rsync_ssh = f"ssh -F {config}"
    remote = f"puente:{shared / 'via-rsync.bin'}"
    sent = openssh("rsync", "-e", rsync_ssh, str(medium), remote)
    assert sent.returncode == 0, sent.stderr
    fetched = openssh("rsync", "-e", rsync_ssh, remote, str(tmp_path / "rsync-back.bin"))
    assert fetched.returncode == 0, fetched.stderr
    assert sha256(shared / "via-rsync.bin") == sha256(medium) == sha256(tmp_path / "rsync-back.bin")

    console.end()
    assert customer.wait() == 0
    # Every command and every file moved is in the customer's log and on their screen.
    record = agent_log(logs)
    digest = sha256(big)
    for seen in (record, customer.output):
        assert "The technician ran a command: echo hello-through-puente" in seen
        assert f"copied a file to this computer: /big.bin (100.0 MB, SHA-256 {digest})" in seen
        assert "copied a file from this computer: /big.bin" in seen
        assert "rsync --server" in seen


# The technician's interactive terminal -------------------------------------------------


class Terminal:
    """A pseudo-terminal the technician's console runs in (as in a real terminal window)."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.output = b""
        self._seen = 0

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: bytes, timeout: float = 20) -> re.Match[bytes]:
        import select

        deadline = time.monotonic() + scaled(timeout)
        while True:
            match = re.compile(pattern).search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} in {self.output[-2000:]!r}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    raise AssertionError(f"terminal closed: {self.output[-2000:]!r}") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.master)


def test_interactive_shell_follows_the_local_window(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician()
    argv = [sys.executable, "-m", "technician.cli", "--relay", relay_process.ws_url]
    terminal = Terminal([*argv, "--token", token, "session", "--ticket", "HD-3"], 30, 100)
    try:
        code = terminal.expect(rb"code: (\S+)").group(1).decode()
        customer = ScriptedCustomer(
            relay_process.ws_url, code, tmp_path / "logs", answers={"Shell": "y"}
        )
        terminal.expect(rb"Check code")
        terminal.type("shell\n")
        terminal.type("stty size\r")
        terminal.expect(rb"[\r\n]30 100\r")
        terminal.resize(40, 120)  # the technician's window grows
        terminal.process.send_signal(signal.SIGWINCH)
        time.sleep(0.2)
        terminal.type("stty size\r")
        terminal.expect(rb"[\r\n]40 120\r")
        terminal.type("exit\r")
        terminal.expect(rb"ok shell: the shell ended \(exit status 0\)")
        terminal.type("end\n")
        terminal.expect(rb"ok end: session ended")
        assert terminal.process.wait(scaled(20)) == 0
    finally:
        terminal.close()
    assert customer.wait() == 0
    record = agent_log(tmp_path / "logs")
    assert "The technician opened a terminal on this computer." in record
    assert "The technician typed in the terminal: stty size" in record


# 2. A killed `get` resumes ------------------------------------------------------------------


def test_interrupted_get_resumes(tmp_path: Path) -> None:
    # A killed technician looks like a dropped network to the relay, which keeps the
    # session for its grace period in case the technician comes back; 1 s here, so
    # the customer's side ends promptly (issue 8's resume).
    relay_process = start_relay(tmp_path / "relay-data", "--resume-grace", "1")
    try:
        _interrupted_get_resumes(relay_process, tmp_path)
    finally:
        relay_process.stop()


def _interrupted_get_resumes(relay_process: RelayProcess, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    source = shared / "report.bin"
    source.write_bytes(os.urandom(40 * 1000 * 1000))
    local = tmp_path / "report.bin"
    part = tmp_path / "report.bin.puente-part"
    token = relay_process.add_technician()

    first = Console(relay_process.ws_url, token)
    customer = customer_for(first, relay_process.ws_url, tmp_path / "logs", {"Files": "y"}, shared)
    first.process.send(f"get report.bin {local}")
    deadline = time.monotonic() + scaled(30)
    while not (part.exists() and part.stat().st_size >= 2_000_000):
        assert time.monotonic() < deadline, first.process.output
        time.sleep(0.005)
    first.process.kill()  # the technician's program dies mid-transfer
    stopped_at = part.stat().st_size
    assert 0 < stopped_at < source.stat().st_size
    assert not local.exists()
    customer.wait()

    second = Console(relay_process.ws_url, token)
    customer_for(second, relay_process.ws_url, tmp_path / "logs", {"Files": "y"}, shared)
    result = second.run(f"get report.bin {local}", timeout=60)
    assert result["status"] == "ok", result
    assert result["data"]["resumed_from"] >= stopped_at
    assert "resumed at byte" in result["message"]
    assert result["data"]["sha256"] == sha256(source) == sha256(local)
    assert not part.exists()
    second.end()


def test_put_resumes_a_matching_part_and_restarts_a_stale_one(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    local = tmp_path / "setup.bin"
    content = os.urandom(3 * 1000 * 1000)
    local.write_bytes(content)
    # What an interrupted put leaves on the customer's side: the first 1.2 MB.
    (shared / "setup.bin.puente-part").write_bytes(content[:1_200_000])
    console = Console(relay_process.ws_url, relay_process.add_technician())
    customer = customer_for(
        console, relay_process.ws_url, tmp_path / "logs", {"Files": "y"}, shared
    )
    resumed = console.run(f"put {local} setup.bin")
    assert resumed["status"] == "ok", resumed
    assert resumed["data"]["resumed_from"] == 1_200_000
    assert (shared / "setup.bin").read_bytes() == content
    # A part that does not match the file (another file, or changed) is not trusted.
    (shared / "other.bin.puente-part").write_bytes(os.urandom(1_000_000))
    restarted = console.run(f"put {local} other.bin")
    assert restarted["status"] == "ok", restarted
    assert restarted["data"]["resumed_from"] == 0
    assert (shared / "other.bin").read_bytes() == content
    assert not list(shared.glob("*.puente-part"))
    console.end()
    customer.wait()


# 3. Consent and confinement -----------------------------------------------------------------


@needs_openssh
def test_nothing_runs_or_moves_without_consent(relay_process: RelayProcess, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("notes")
    touched = tmp_path / "touched"
    console = Console(relay_process.ws_url, relay_process.add_technician())
    customer = customer_for(
        console, relay_process.ws_url, tmp_path / "logs", {"Shell": "n", "Files": "n"}, shared
    )

    shell = console.run(f'shell -c "touch {touched}"')
    assert shell["status"] == "declined", shell
    put = console.run(f"put {shared / 'notes.txt'} copy.txt")
    assert put["status"] == "declined", put
    assert console.run("forward 0")["status"] == "declined"
    assert customer.questions.count("Shell") == 2  # shell, then forward asked again
    assert not touched.exists()
    assert not (shared / "copy.txt").exists()
    console.end()
    customer.wait()


@needs_openssh
def test_sftp_and_scp_are_refused_without_files(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    small = tmp_path / "small.txt"
    small.write_text("not to be copied\n")
    console = Console(relay_process.ws_url, relay_process.add_technician())
    customer = customer_for(
        console, relay_process.ws_url, tmp_path / "logs", {"Shell": "y", "Files": "n"}
    )
    forward = console.run("forward 0")
    assert forward["status"] == "ok", forward
    assert forward["data"]["allowed"] == ["shell"]
    config = forward["data"]["ssh_config"]
    assert openssh("ssh", "-F", config, "puente", "echo", "shell-ok").stdout == "shell-ok\n"
    batch = tmp_path / "batch"
    batch.write_text("ls\n")
    sftp = openssh("sftp", "-F", config, "-b", str(batch), "puente")
    assert sftp.returncode != 0
    assert "subsystem request failed" in sftp.stderr
    for legacy in ([], ["-O"]):  # SFTP-based scp, and the old scp protocol
        copied = openssh("scp", "-F", config, *legacy, str(small), "puente:copied.txt")
        assert copied.returncode != 0, legacy
    assert not (Path.home() / "copied.txt").exists()
    console.end()
    customer.wait()


@needs_openssh
def test_files_without_shell_and_paths_outside_the_folder(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ok.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside the shared folder")
    (shared / "link-out").symlink_to(tmp_path / "secret.txt")
    (shared / "dir-out").symlink_to(tmp_path)
    touched = tmp_path / "touched"
    console = Console(relay_process.ws_url, relay_process.add_technician())
    customer = customer_for(
        console, relay_process.ws_url, tmp_path / "logs", {"Shell": "n", "Files": "y"}, shared
    )

    forward = console.run("forward 0")
    assert forward["status"] == "ok", forward
    assert forward["data"]["allowed"] == ["files"]
    config = forward["data"]["ssh_config"]
    # Files were allowed, shell was not: a command through ssh is refused.
    ran = openssh("ssh", "-F", config, "puente", f"touch {touched}")
    assert ran.returncode != 0
    assert not touched.exists()

    # Inside the folder works; `..`, absolute escapes and symlinks out are refused.
    got = console.run(f"get ok.txt {tmp_path / 'ok-copy.txt'}")
    assert got["status"] == "ok", got
    for remote in ("../secret.txt", "/../secret.txt", "link-out", "dir-out/secret.txt"):
        refused = console.run(f"get {remote} {tmp_path / 'stolen.txt'}")
        assert refused["status"] == "declined", refused
        assert "outside the folder the customer shared" in refused["message"]
    escape = console.run(f"put {shared / 'ok.txt'} ../planted.txt")
    assert escape["status"] == "declined", escape
    assert not (tmp_path / "planted.txt").exists()
    assert not (tmp_path / "stolen.txt").exists()

    # The same through OpenSSH's sftp.
    batch = tmp_path / "batch"
    for command in ("get link-out", "get ../secret.txt", "get dir-out/secret.txt"):
        batch.write_text(f"{command} {tmp_path / 'stolen.txt'}\n")
        sftp = openssh("sftp", "-F", config, "-b", str(batch), "puente")
        assert sftp.returncode != 0, command
        assert not (tmp_path / "stolen.txt").exists()
    console.end()
    customer.wait()
    assert "Refused: the technician tried the command" in agent_log(tmp_path / "logs")


def test_stopping_shell_ends_the_running_command(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    console = Console(relay_process.ws_url, relay_process.add_technician())
    customer = customer_for(console, relay_process.ws_url, tmp_path / "logs", {"Shell": "y"})
    console.process.send(f'shell -c "echo $$ > {pid_file}; exec sleep 60"')
    deadline = time.monotonic() + scaled(20)
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    customer.send("stop shell")
    record = json.loads(console.process.expect(r'^\{"command": "shell"', 15).string)
    assert record["status"] == "declined", record
    assert "stopped shell" in record["message"]
    deadline = time.monotonic() + scaled(5)
    while os.path.exists(f"/proc/{pid}") and "zombie" not in _proc_state(pid):
        assert time.monotonic() < deadline, "the command outlived the customer's stop"
        time.sleep(0.02)
    console.end()
    customer.wait()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


# 4. The relay sees none of it ---------------------------------------------------------------


def test_relay_sees_neither_file_content_nor_shell_output(tmp_path: Path) -> None:
    marker = b"PUENTE-MARKER-" + os.urandom(8).hex().encode()
    shell_marker = "SHELL-OUTPUT-" + os.urandom(8).hex()
    shared = tmp_path / "shared"
    shared.mkdir()
    upload = tmp_path / "upload.bin"
    upload.write_bytes(marked_content(3 * 1000 * 1000, marker))
    # The shell prints the marker from a file, so it never appears in the command line.
    (shared / "shell.txt").write_text(shell_marker * 3)
    relay = start_relay(tmp_path / "relay-data")
    try:
        with RecordingProxy("127.0.0.1", relay.port) as agent_side:
            console = Console(relay.ws_url, relay.add_technician())
            customer = customer_for(
                console, agent_side.url, tmp_path / "logs", {"Shell": "y", "Files": "y"}, shared
            )
            put = console.run(f"put {upload} upload.bin", timeout=60)
            assert put["status"] == "ok", put
            back = tmp_path / "back.bin"
            got = console.run(f"get upload.bin {back}", timeout=60)
            assert got["status"] == "ok", got
            shell = console.run(f'shell -c "cat {shared / "shell.txt"}"')
            assert shell["status"] == "ok", shell
            assert shell_marker in shell["data"]["stdout"]
            console.end()
            customer.wait()
            recorded = agent_side.recorded
    finally:
        relay.stop()
    assert back.read_bytes() == upload.read_bytes()
    # The customer was told, with the hash of what arrived.
    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    assert f"copied a file to this computer: /upload.bin (3.0 MB, SHA-256 {digest})" in (
        customer.output
    )
    assert len(recorded) > 2 * upload.stat().st_size  # the file crossed both ways
    assert marker not in recorded
    assert shell_marker.encode() not in recorded
    assert re.search(rb"PUENTE-MARKER", recorded) is None
    # The ticket's summary names the files moved (name, size, SHA-256), and nothing the
    # relay keeps holds their contents or the shell's output.
    database = sqlite3.connect(tmp_path / "relay-data" / "relay.sqlite3")
    try:
        [(text,)] = database.execute("SELECT summary FROM summaries").fetchall()
    finally:
        database.close()
    files = [(f["direction"], f["name"], f["size"], f["sha256"]) for f in json.loads(text)["files"]]
    size = upload.stat().st_size
    assert files == [
        ("to_customer", "upload.bin", size, digest),
        ("from_customer", "upload.bin", size, digest),
    ]
    kept = b"".join(p.read_bytes() for p in (tmp_path / "relay-data").rglob("*") if p.is_file())
    assert b"PUENTE-MARKER" not in kept and shell_marker.encode() not in kept


# 5. Files cannot become code execution ----------------------------------------------------


@needs_openssh
def test_files_shares_its_own_folder_and_refuses_startup_locations(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "autostart").mkdir(parents=True)
    (home / ".bashrc").write_text("# the customer's own\n")
    small = tmp_path / "small.txt"
    small.write_text("echo planted\n")
    token = relay_process.add_technician()

    # The default answer shares ~/Puente shared (created, 0700), not the home folder.
    console = Console(relay_process.ws_url, token)
    customer = ScriptedCustomer(
        relay_process.ws_url, console.code, tmp_path / "logs", answers={"Files": "y"},
        env={"HOME": str(home)},
    )  # fmt: skip
    console.paired()
    put = console.run(f"put {small} hello.txt")
    assert put["status"] == "ok", put
    assert (home / "Puente shared" / "hello.txt").read_text() == "echo planted\n"
    assert (home / "Puente shared").stat().st_mode & 0o777 == 0o700
    assert not (home / "hello.txt").exists()
    escape = console.run(f"put {small} ../.bashrc")
    assert escape["status"] == "declined", escape
    console.end()
    customer.wait()

    # The customer picks the home folder: start-up locations still cannot be written.
    console = Console(relay_process.ws_url, token)
    customer = ScriptedCustomer(
        relay_process.ws_url, console.code, tmp_path / "logs", answers={"Files": "y"},
        env={"HOME": str(home)}, choices={"Which folder": str(home)},
    )  # fmt: skip
    console.paired()
    for remote in (".bashrc", ".ssh/authorized_keys", ".config/autostart/x.desktop"):
        refused = console.run(f"put {small} {remote}")
        assert refused["status"] == "declined", refused
        assert "is a start-up or shell-initialisation location" in refused["message"], refused
        assert "ask the customer to allow Shell" in refused["message"]
    assert (home / ".bashrc").read_text() == "# the customer's own\n"
    assert not (home / ".ssh").exists()
    assert list((home / ".config" / "autostart").iterdir()) == []
    assert not list(home.glob(".bashrc*.puente-part"))

    forward = console.run("forward 0")
    assert forward["status"] == "ok", forward
    config = forward["data"]["ssh_config"]
    batch = tmp_path / "batch"
    for command in ("mkdir .ssh", f"put {small} .profile", "rename Puente\\ shared .ssh"):
        batch.write_text(f"{command}\n")
        sftp = openssh("sftp", "-F", config, "-b", str(batch), "puente")
        assert sftp.returncode != 0, (command, sftp)
    assert not (home / ".ssh").exists() and not (home / ".profile").exists()
    batch.write_text(f"put {small} tool\nchmod 755 tool\n")
    assert openssh("sftp", "-F", config, "-b", str(batch), "puente").returncode == 0
    batch.write_text("chmod 4755 tool\n")
    sftp = openssh("sftp", "-F", config, "-b", str(batch), "puente")
    assert sftp.returncode != 0  # OpenSSH's sftp prints only "Permission denied"...
    assert "setuid or setgid" in _sftp_chmod_refusal(config, "tool", 0o4755)  # ...the reason
    assert (home / "tool").stat().st_mode & 0o7777 == 0o755
    console.end()
    customer.wait()
    log = agent_log(tmp_path / "logs")
    assert "Refused: /.bashrc is a start-up or shell-initialisation location" in log
    assert "Refused: Setting the setuid or setgid bit (mode 4755) on /tool" in log


def _sftp_chmod_refusal(config: Path, path: str, mode: int) -> str:
    """The reason the agent gives for refusing a chmod (asyncssh's SFTP client shows it)."""
    import asyncio

    import asyncssh

    settings = dict(
        line.strip().split(" ", 1)
        for line in Path(config).read_text().splitlines()[1:]
        if line.strip()
    )
    # The pinned host key (known_hosts names it by its alias, which asyncssh does not use).
    host_key = Path(settings["UserKnownHostsFile"]).read_text().split(" ", 1)[1]

    async def chmod() -> str:
        async with (
            asyncssh.connect(
                settings["HostName"],
                int(settings["Port"]),
                username=settings["User"],
                client_keys=[settings["IdentityFile"]],
                known_hosts=([asyncssh.import_public_key(host_key)], [], []),
            ) as connection,
            connection.start_sftp_client() as sftp,
        ):
            try:
                await sftp.chmod(path, mode)
            except asyncssh.SFTPPermissionDenied as exc:
                return exc.reason
            return "the chmod was not refused"

    return asyncio.run(asyncio.wait_for(chmod(), scaled(30)))
