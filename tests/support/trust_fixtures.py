"""An organisation for tests: keys and certificates made with the real ``puente-tech org``
commands, and small test fixes signed with the real organisation key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from protocol.fixbundle import make_bundle
from protocol.identity import OrganisationSecret, decrypt_organisation_key
from tests.support.timeouts import scaled

PASSPHRASE = "correct horse battery staple"

STREAM_TEST = {
    "manifest.toml": """
id = "stream-test"
version = "1.0.0"
title = "Stream test"
description = "Prints a line, waits for a signal, prints another and exits with status 3."
platforms = ["linux", "macos"]
interpreter = "sh"
script = "fix.sh"
timeout = 60
needs_admin = false
risk = "low"

[parameters.go]
type = "string"
description = "File whose appearance lets the script go on"
max_length = 1000
""",
    "fix.sh": """#!/bin/sh
echo started
n=0
while [ ! -e "$PUENTE_PARAM_GO" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
: > "$PUENTE_PARAM_GO.after"
echo "a warning" >&2
echo done
exit 3
""",
}

ECHO_ARGS = {
    "manifest.toml": """
id = "echo-args"
version = "1.0.0"
title = "Echo arguments"
description = "Prints the text it was given, as it arrived."
platforms = ["linux", "macos"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"

[parameters.text]
type = "string"
description = "Any text"
max_length = 1000
""",
    "fix.sh": """#!/bin/sh
for arg in "$@"; do printf 'arg:%s\\n' "$arg"; done
printf 'env:%s\\n' "$PUENTE_PARAM_TEXT"
printf 'cwd:%s\\n' "$PWD"
""",
}

MARKER = {
    "manifest.toml": """
id = "marker"
version = "1.0.0"
title = "Leave a marker"
description = "Creates one file, to show whether it ran."
platforms = ["linux", "macos"]
interpreter = "sh"
script = "fix.sh"
timeout = 30
needs_admin = false
risk = "low"

[parameters.path]
type = "string"
description = "File to create"
max_length = 1000
""",
    "fix.sh": """#!/bin/sh
echo ran > "$PUENTE_PARAM_PATH"
echo "marker written"
""",
}


def write_fix(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text.lstrip("\n"), encoding="utf-8")
    return directory


def tech_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``puente-tech`` to completion (the organisation's own commands)."""
    return subprocess.run(
        [sys.executable, "-m", "technician.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "PUENTE_ORG_PASSPHRASE": PASSPHRASE, **(env or {})},
    )


@dataclass
class Organisation:
    """One organisation's files, made by the CLI."""

    directory: Path
    name: str

    @property
    def key(self) -> Path:
        return self.directory / "org.key"

    @property
    def public(self) -> Path:
        return self.directory / "org.pub"

    def secret(self) -> OrganisationSecret:
        return decrypt_organisation_key(self.key.read_bytes(), PASSPHRASE)

    def technician(self, name: str, stem: str, valid_days: int = 30) -> tuple[Path, Path]:
        """A technician key pair and certificate, through ``org keygen`` and ``org certify``."""
        key = self.directory / f"{stem}.key"
        cert = self.directory / f"{stem}.cert"
        done = tech_cli("org", "keygen", "--out", str(key))
        assert done.returncode == 0, done.stderr
        done = tech_cli(
            "org",
            "certify",
            name,
            "--org-key",
            str(self.key),
            "--technician-key",
            str(key.with_suffix(".pub")),
            "--valid-days",
            str(valid_days),
            "--out",
            str(cert),
        )
        assert done.returncode == 0, done.stderr
        return cert, key

    def sign(self, secret: OrganisationSecret, files: dict[str, str], out: Path, **kw: int) -> Path:
        """Sign a test fix in-process (the CLI path is tested once, elsewhere)."""
        manifest = files["manifest.toml"].lstrip("\n").encode()
        script = files["fix.sh"].lstrip("\n").encode()
        now = int(time.time())
        out.write_bytes(
            make_bundle(
                manifest,
                script,
                signer=secret,
                signed_at=kw.get("signed_at", now),
                expires_at=kw.get("expires_at", now + 86400),
            )
        )
        return out


def make_organisation(directory: Path, name: str) -> Organisation:
    done = tech_cli("org", "init", "--out", str(directory), "--name", name)
    assert done.returncode == 0, done.stderr
    return Organisation(directory, name)
