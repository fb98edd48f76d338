"""The one-file agent (acceptance 2 of issue 8): built here with PyInstaller, then used.

Marked ``build``: the module builds once (about 20-40 s, plus a few minutes the
first time on a machine, when build.py compiles numpy without OpenBLAS) and every
check uses that binary. It is built the way an organisation would: baked relay
address, its public key and name. Then: under 30 MB, nothing secret inside, a window
in under 3 seconds, a real session in console mode with the code taken from the
file's name, and nothing left behind but the audit log; and, since the download
leaves out what the agent does not use, a live screen stream from it with every
tile codec and the pointer's shape. And, as issue 19 asks, the same file served by
the relay from the join page (named after the nameplate) joins with the 6 digits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mss
import numpy as np
import pytest

from agent import tk_ui
from protocol.code import SessionCode
from protocol.screen import Codec, Frame
from technician.client import RelayAPI, TechnicianSession
from technician.credentials import load_credentials
from technician.screen_stream import ScreenStream, psnr
from tests.support.customer import Process, ScriptedCustomer
from tests.support.relay import RelayProcess, start_relay
from tests.support.screen_fixtures import APP, PICTURE_AT, known_picture, write_ppm
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation
from tests.support.xdisplay import wait_window, xvfb

# One test, so that pytest-xdist cannot build twice in two workers; the build takes
# 20-40 s, and compiling numpy the first time on a machine several minutes more.
pytestmark = [pytest.mark.build, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]

#: What the download may weigh, as acceptance 2 asks (MB of 10^6 bytes, as build.py
#: reports it).
SIZE_BUDGET_MB = 30


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
        check_downloaded_from_the_join_page_it_asks_only_for_six_digits(built, tmp_path / "join")
        check_shares_the_screen_with_every_codec(built, tmp_path / "screen")
    check_numpy_benchmark_runs()


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
            timeout=scaled(1500),
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
    assert size < SIZE_BUDGET_MB * 1e6, f"{size / 1e6:.1f} MB"
    archive = CArchiveReader(str(built.binary))
    # numpy built without BLAS (build.py): OpenBLAS alone was 8.5 MB of a 35.7 MB file.
    assert not [name for name in archive.toc if "openblas" in name.lower()]
    # The customer's download carries no relay code and no technician code (issue 14):
    # read from the archive's own table of contents (the Python modules are in its PYZ).
    [pyz] = [name for name in archive.toc if name.endswith(".pyz")]
    modules = set(archive.open_embedded_archive(pyz).toc)
    assert {"agent.cli", "link.connection", "protocol.session"} <= modules  # the reader works
    assert not sorted(m for m in modules if m.split(".")[0] in ("relay", "technician"))
    baked = json.loads(archive.extract("puente-settings.json"))
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
    tech = certified_technician(built, "HD-5", "Ana Technician", "ana")
    code = tech.expect(r"^code: (\S+)$").group(1)
    downloads, home, temp = customer_folders(tmp_path)
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
        joins_verified_and_sends_diagnostics(customer, tech, tmp_path / "diag.json")
        # The screen pipeline works inside the one file too (numpy, mss, JPEG, PNG).
        tech.send(f"screenshot {tmp_path / 'screen.png'}")
        customer.expect(r"^Allow Screen view\?")
        customer.send("y")
        tech.expect(r"^ok screenshot", timeout=60)
        assert (tmp_path / "screen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # Remote control too: pynput's X11 backend is inside (PyInstaller misses it).
        tech.send("move 100 80")
        customer.expect(r"^Allow Remote control\?")
        customer.send("y")
        tech.expect(r"^ok move: pointer at 100,80")
        pointer = subprocess.run(
            ["xdotool", "getmouselocation"],
            env={**os.environ, "DISPLAY": display},
            capture_output=True,
            text=True,
            timeout=scaled(10),
        )
        assert pointer.stdout.startswith("x:100 y:80 "), pointer.stdout + pointer.stderr
        ends_with_a_rating(customer, tech)
        # No library's warning reaches the customer (cryptography deprecates DSA, which
        # asyncssh touches on import): the one file quiets them as the installed agent does.
        assert not re.search(r"\w*Warning\b|\bdeprecated\b", customer.output + customer.stderr)

    # Attended mode installs nothing: the unpacked runtime is gone, only the log stays.
    assert list(temp.iterdir()) == []
    left = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file())
    assert len(left) == 1 and str(left[0]).startswith(".local/state/puente/session-"), left
    assert sorted(p.name for p in downloads.iterdir()) == [named.name]


def certified_technician(built: Built, ticket: str, account: str, stem: str) -> Process:
    """A technician console holding a certificate of the organisation the agent pins:
    only such a technician gets in, and the customer sees the verified name."""
    token = built.relay.add_technician(account)
    cert, key = built.organisation.technician("Ana Lopez", stem)
    return Process(
        [sys.executable, "-m", "technician.cli", "--relay", built.relay.ws_url, "--token", token]
        + ["--cert", str(cert), "--key", str(key), "session", "--ticket", ticket],
        stdin=True,
    )


def customer_folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The customer's Downloads, home and temporary folders, made empty."""
    folders = (tmp_path / "Downloads", tmp_path / "home", tmp_path / "tmp")
    for folder in folders:
        folder.mkdir()
    return folders


def check_downloaded_from_the_join_page_it_asks_only_for_six_digits(
    built: Built, tmp_path: Path
) -> None:
    """Acceptance 2 of issue 19: the operator adds this build to the relay; the customer
    downloads it from the join page, makes it runnable and runs it as downloaded; it
    knows its nameplate from its name and joins with the 6 digits typed on stdin."""
    tmp_path.mkdir()
    added = subprocess.run(
        [sys.executable, "-m", "relay.cli", "downloads", "add", str(built.binary)]
        + ["--os", "linux", "--data-dir", str(built.relay.data_dir)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert added.returncode == 0, added.stderr
    tech = certified_technician(built, "HD-19", "Ana at the join page", "ana-join")
    code = tech.expect(r"^code: (\S+)$").group(1)
    link = tech.expect(r"^Join page for the customer.*: (http\S+)$").group(1)
    nameplate, secret = code.split("-")[0], "".join(code.split("-")[1:])
    request = urllib.request.Request(link, headers={"User-Agent": "Mozilla/5.0 (X11; Linux)"})
    with urllib.request.urlopen(request, timeout=scaled(10)) as page:
        html = page.read().decode()
    href, shown_sha = re.search(
        r'<a class="download" href="([^"]+)".*?<code class="sha256">([0-9a-f]{64})</code>', html
    ).groups()  # type: ignore[union-attr]
    downloads, home, temp = customer_folders(tmp_path)
    with urllib.request.urlopen(urllib.parse.urljoin(link, href), timeout=scaled(60)) as got:
        name = re.search(r'filename="([^"]+)"', got.headers["Content-Disposition"]).group(1)  # type: ignore[union-attr]
        saved = downloads / name
        with saved.open("wb") as out:
            shutil.copyfileobj(got, out)
    assert name == f"puente-agent-{nameplate}" and secret not in name
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown_sha
    saved.chmod(0o755)  # chmod +x, as the page tells a Linux customer
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PUENTE_", "XDG_", "DISPLAY"))
    }
    customer = Process(
        [str(saved), "--console"],
        env={**clean_env, "HOME": str(home), "TMPDIR": str(temp), "PUENTE_LANG": "en"},
        stdin=True,
    )
    customer.send(secret)  # only the 6 digits the technician reads out
    joins_verified_and_sends_diagnostics(customer, tech, tmp_path / "diag.json")
    assert f"Type the 6 digits your technician reads you (session {nameplate})" in customer.output
    ends_with_a_rating(customer, tech)


def joins_verified_and_sends_diagnostics(customer: Process, tech: Process, out: Path) -> None:
    """The customer sees the verified technician and the check code, then allows
    diagnostics; the technician gets them."""
    customer.expect(r"^Verified: Ana Lopez, Acme IT$", timeout=60)
    customer.expect(r"^Check code")
    tech.expect(r"^Customer joined")
    tech.send(f"diagnostics {out}")
    customer.expect(r"^Allow Diagnostics\?")
    customer.send("y")
    tech.expect(r"^ok diagnostics: written to")
    assert json.loads(out.read_text())["hostname"]


def ends_with_a_rating(customer: Process, tech: Process) -> None:
    tech.send("end")
    customer.expect(r"^How would you rate this help")
    customer.send("5")
    customer.expect(r"^Any comment")
    customer.send("")
    assert tech.wait(30) == 0
    assert customer.wait(30) == 0, customer.output + customer.stderr


def check_shares_the_screen_with_every_codec(built: Built, tmp_path: Path) -> None:
    """The download leaves out what the agent does not use (OpenBLAS, Pillow's other
    formats): a live stream from it still brings lossless, JPEG and fill tiles that
    match the screen, and the pointer's shape (a PNG made with Pillow)."""
    tmp_path.mkdir()
    token = built.relay.add_technician("Bea Technician")
    cert, key = built.organisation.technician("Bea Ruiz", "bea")
    credentials = load_credentials(cert, key)
    picture = tmp_path / "picture.ppm"
    write_ppm(known_picture(), picture)

    async def stream_from(
        customer_code: SessionCode, customer: ScriptedCustomer, display: str
    ) -> None:
        session = await TechnicianSession.connect(
            built.relay.ws_url,
            customer_code,
            "HD-6",
            token=token,
            technician_name="Ana",
            wait_timeout=scaled(30),
            credentials=credentials,
        )
        try:
            stream = ScreenStream(session, monitor=1)
            frames: list[Frame] = []
            stream.on_frame = lambda s, frame, damaged: frames.append(frame)
            await stream.start(timeout=scaled(30))
            await stream.wait_for(
                lambda: stream.decoder.complete and stream.decoder.cursor.image is not None,
                scaled(30),
            )
            codecs = {rect.codec for frame in frames for rect in frame.rects}
            assert {Codec.ZLIB, Codec.JPEG, Codec.FILL} <= codecs, codecs
            assert stream.decoder.cursor.image is not None
            assert stream.decoder.cursor.image.shape[2] == 4  # RGBA: the shape has alpha
            with mss.MSS(display=display) as screen:
                shot = screen.grab(screen.monitors[1])
            direct = np.frombuffer(shot.rgb, np.uint8).reshape(shot.height, shot.width, 3)
            assert stream.decoder.canvas is not None
            assert psnr(stream.decoder.canvas, direct) > 30
            await stream.stop()
        finally:
            await session.end("test over")
        assert customer.wait(30) == 0, customer.output + customer.stderr
        assert customer.questions == ["Screen view"]

    with xvfb() as display:
        env = {"DISPLAY": display}
        app = Process(
            [sys.executable, str(APP), str(picture), f"+{PICTURE_AT[0]}+{PICTURE_AT[1]}"],
            env=env,
            stdin=True,
        )
        try:
            app.expect(r"^ready ", timeout=scaled(20))
            api = RelayAPI(built.relay.ws_url, token)
            code = SessionCode.new(api.create_session("HD-6")["nameplate"])
            customer = ScriptedCustomer(
                built.relay.ws_url,
                str(code),
                tmp_path / "logs",
                answers={"Screen view": "y"},
                env={**env, "HOME": str(tmp_path)},
                program=[str(built.binary)],
            )
            try:
                asyncio.run(stream_from(code, customer, display))
            finally:
                if customer.proc.poll() is None:
                    customer.proc.terminate()  # the bootloader passes it on (see above)
                    customer.proc.wait(timeout=scaled(10))
                customer.close()
        finally:
            app.kill()


def check_numpy_benchmark_runs() -> None:
    """bench/agent_numpy.py still runs (its smoke run lives here: it needs the numpy
    build.py has just built). Tiny workload; its figures mean nothing and are not
    checked."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agent_numpy.py"), "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["download"]["blas"] == "none"
    assert report["installed"]["numpy"] == report["download"]["numpy"]
    assert set(report["ratios"]) == {"diff_small", "diff_full", "classify", "encode"}
