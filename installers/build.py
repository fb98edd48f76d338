"""Build the customer's one-file agent with PyInstaller.

    python installers/build.py agent [--relay URL] [--org-key FILE] [--org-name NAME]

writes ``dist/puente-agent`` (``puente-agent.exe`` on Windows) for the platform it
runs on: one file the customer downloads and runs, nothing to install. The options
bake the organisation's settings into it (``puente-settings.json``, see
:mod:`agent.settings`): the relay's address, the organisation's name and its
*public* key. Nothing secret is accepted: a private key, a token or any other field
is refused, because whoever has the download has everything inside it.

Name a download ``puente-agent-417862093`` (``.exe``) and the agent joins session
417-862-093 without the customer typing anything.

Exit status: 0 built; 1 the build failed (PyInstaller's log is shown); 2 bad options.
Windows and macOS builds run on those systems (see ``installers/ci/github-build.yml``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "installers" / "puente-agent.spec"
MAX_SIZE_MB = 30


class BuildError(Exception):
    """A bad option; the sentence says what to do."""


def check_relay(url: str) -> str:
    sys.path.insert(0, str(ROOT))
    from relay.client import LinkError, check_relay_url

    try:
        return check_relay_url(url)
    except LinkError as exc:
        raise BuildError(f"--relay: {exc}") from None


def read_public_key(path: Path) -> str:
    """The organisation's Ed25519 public key (``org.pub`` from ``puente-tech org init``)
    as PEM text; refuse anything else."""
    sys.path.insert(0, str(ROOT))
    from cryptography.hazmat.primitives import serialization

    from protocol.errors import TrustError
    from protocol.identity import load_public_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"--org-key: cannot read {path} ({exc.strerror}).") from None
    if b"PRIVATE" in data or b"puente-organisation-key" in data:
        raise BuildError(
            f"--org-key: {path} is a PRIVATE key (even encrypted, it never belongs in an "
            "installer); pass the organisation's public key file (org.pub) instead."
        )
    try:
        key = load_public_key(data)
    except TrustError as exc:
        raise BuildError(f"--org-key: {path}: {exc}") from None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def settings_for(args: argparse.Namespace) -> dict[str, str] | None:
    settings: dict[str, str] = {}
    if args.relay:
        settings["relay"] = check_relay(args.relay)
    if args.org_key:
        settings["org_public_key"] = read_public_key(Path(args.org_key))
    if args.org_name:
        name = " ".join(args.org_name.split())
        if not name or len(name) > 100 or not name.isprintable():
            raise BuildError("--org-name: give the organisation's name, up to 100 characters.")
        settings["org_name"] = name
    if ("org_public_key" in settings) != ("org_name" in settings):
        raise BuildError("--org-key and --org-name go together: pass both or neither.")
    return settings or None


def build_agent(args: argparse.Namespace) -> Path:
    """Run PyInstaller on the spec; return the built file."""
    import PyInstaller.__main__

    settings = settings_for(args)
    dist = Path(args.dist).resolve()
    with tempfile.TemporaryDirectory(prefix="puente-build-") as work:
        env_before = dict(os.environ)
        if settings:
            path = Path(work) / "puente-settings.json"
            path.write_text(json.dumps(settings, indent=1), encoding="utf-8")
            os.environ["PUENTE_BUILD_SETTINGS"] = str(path)
        else:
            os.environ.pop("PUENTE_BUILD_SETTINGS", None)
        os.environ["PUENTE_BUILD_NAME"] = args.name
        # The Python archive too at zlib's best (PyInstaller's default is 6 there).
        os.environ["PYINSTALLER_ZLIB_COMPRESSION_LEVEL"] = "9"
        try:
            PyInstaller.__main__.run(
                [
                    str(SPEC),
                    "--noconfirm",
                    "--clean",
                    "--log-level",
                    "WARN",
                    "--distpath",
                    str(dist),
                    "--workpath",
                    str(Path(work) / "build"),
                ]
            )
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    built = dist / (args.name + (".exe" if sys.platform == "win32" else ""))
    if not built.exists():
        raise RuntimeError(f"PyInstaller finished but {built} is missing")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python installers/build.py",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python installers/build.py agent --relay wss://support.example.org "
        "--org-key org.pub.pem --org-name 'Example IT'",
    )
    parser.add_argument("target", choices=["agent"], help="what to build")
    parser.add_argument("--relay", help="the relay's wss:// address, baked in")
    parser.add_argument("--org-key", help="the organisation's Ed25519 PUBLIC key file (PEM)")
    parser.add_argument("--org-name", help="the organisation's name, shown to customers")
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (default dist/)")
    parser.add_argument("--name", default="puente-agent", help="file name (default puente-agent)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if sys.platform.startswith("linux") and shutil.which("strip") is None:
        print(
            "warning: 'strip' (binutils) is not installed; the download will be about "
            "10 MB bigger. Install binutils and build again.",
            file=sys.stderr,
        )
    try:
        built = build_agent(args)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (RuntimeError, SystemExit) as exc:
        print(f"The build failed: {exc}", file=sys.stderr)
        return 1
    size_mb = built.stat().st_size / 1e6
    print(f"built {built} ({size_mb:.1f} MB) in {time.monotonic() - started:.0f} s")
    if size_mb >= MAX_SIZE_MB:
        print(f"warning: over the {MAX_SIZE_MB} MB budget for a customer download", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
