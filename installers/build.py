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

On Linux the download bundles numpy built from its source without BLAS: numpy's
wheels carry OpenBLAS (a third of the download) for linear algebra, and the agent
only compares and counts pixels. It is compiled once, with a progress bar (a few
minutes; it needs gcc, g++ and Python's headers), and kept in
``~/.cache/puente/numpy-without-blas`` (``$XDG_CACHE_HOME`` is honoured) for the next
builds. ``--keep-openblas`` skips this and bundles numpy as installed;
``python installers/build.py numpy`` only prepares that numpy (for CI, before the
tests, so that no test waits for the compile).

Exit status: 0 built; 1 the build failed (PyInstaller's log is shown); 2 bad options.
Windows and macOS builds run on those systems (see ``installers/ci/github-build.yml``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "installers" / "puente-agent.spec"
MAX_SIZE_MB = 30


#: numpy's build options for the download: no BLAS or LAPACK library (numpy then uses
#: its own small lapack_lite for the linear algebra the agent never does); without
#: Intel's vector math library, Highway and x86-simd-sort (vectorised sin/exp/log and
#: np.sort, which the agent does not call on arrays) and the SIMD test module. Every
#: comparison, reduction and arithmetic loop keeps its SIMD code, so the tile diff runs
#: as fast as with the wheel. Leaving those out halves the compile time.
NUMPY_WITHOUT_BLAS = [
    "-Dblas=none",
    "-Dlapack=none",
    "-Dallow-noblas=true",
    "-Ddisable-svml=true",
    "-Ddisable-highway=true",
    "-Ddisable-intel-sort=true",
    "-Dtest-simd=[]",
]


class BuildError(Exception):
    """A bad option; the sentence says what to do."""


class BuildFailed(RuntimeError):
    """A build step failed; the sentence says why and what to do."""


def check_relay(url: str) -> str:
    sys.path.insert(0, str(ROOT))
    from link.connection import LinkError, check_relay_url

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


def cache_root() -> Path:
    """Where builds keep what they reuse (``$XDG_CACHE_HOME/puente``, ``~/.cache/puente``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "puente"


def numpy_without_blas_folder(cache: Path, version: str) -> Path:
    """Where numpy ``version`` built without BLAS for this Python and platform is kept."""
    tag = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"
    return cache / "numpy-without-blas" / f"numpy-{version}-{tag}"


def built_with(version: str) -> dict[str, object]:
    """What a finished build records: a build made another way is made again."""
    return {"numpy": version, "options": NUMPY_WITHOUT_BLAS, "checked": "blas none"}


def numpy_without_blas_ready(target: Path, version: str) -> bool:
    """Whether ``target`` holds a complete build with today's options."""
    done = target / "built-with.json"
    return done.exists() and json.loads(done.read_text(encoding="utf-8")) == built_with(version)


def locked_hashes(name: str, version: str) -> list[str]:
    """The hashes the lock (requirements/dev.txt) gives ``name==version``'s files; none
    when the lock does not pin that version (pip then checks nothing)."""
    lock = ROOT / "requirements" / "dev.txt"
    hashes: list[str] = []
    inside = False
    for line in lock.read_text(encoding="utf-8").splitlines() if lock.exists() else []:
        if not line.startswith((" ", "#")):
            inside = line.startswith(f"{name}=={version} ") or line == f"{name}=={version}"
        elif inside and "--hash=" in line:
            hashes.append(line.split("--hash=", 1)[1].rstrip(" \\"))
    return hashes


def numpy_without_blas(cache: Path) -> Path:
    """A folder holding the installed numpy's version built without BLAS; put it first
    on PYTHONPATH and PyInstaller bundles that numpy. Built once per numpy version and
    Python, then reused from ``cache``."""
    import fcntl  # the numpy build is for Linux only

    version = importlib.metadata.version("numpy")
    target = numpy_without_blas_folder(cache, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two builds at once (two test workers, two terminals) compile it once: the second
    # waits here, then finds it ready.
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not numpy_without_blas_ready(target, version):
            _compile_numpy_without_blas(target, version)
    return target


def _compile_numpy_without_blas(target: Path, version: str) -> None:
    shutil.rmtree(target, ignore_errors=True)
    log_path = target.parent / f"{target.name}.log"
    print(
        f"Building numpy {version} without OpenBLAS for the download (once; a few minutes, "
        f"kept in {target.parent})",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="puente-numpy-") as wheels:
        # --no-cache-dir: pip's wheel cache does not tell builds with other options apart,
        # so it could hand back a numpy built with OpenBLAS (or give ours to others).
        # The source is the one the lock names: downloaded with its hashes checked, then
        # compiled from that file (pip applies -C options to command-line requirements).
        wanted_source = Path(wheels) / "numpy-source.txt"
        hashes = " ".join(f"--hash={h}" for h in locked_hashes("numpy", version))
        wanted_source.write_text(f"numpy=={version} {hashes}\n", encoding="utf-8")
        fetch = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary"]
        fetch += ["numpy", "-r", str(wanted_source), "-d", str(Path(wheels) / "source")]
        fetched = subprocess.run(fetch, capture_output=True, text=True)
        sources = sorted((Path(wheels) / "source").glob("numpy-*"))
        if fetched.returncode != 0 or not sources:
            raise BuildFailed(
                f"numpy {version}'s source could not be fetched or did not match the lock's "
                f"hashes: {fetched.stderr.strip()} Check the network and the lock."
            )
        command = [sys.executable, "-m", "pip", "wheel", str(sources[0])]
        command += ["--no-deps", "--no-cache-dir", "-v", "-w", wheels]
        command += [f"-Csetup-args={option}" for option in NUMPY_WITHOUT_BLAS]
        if run_with_progress(command, log_path, f"numpy {version} without OpenBLAS") != 0:
            raise BuildFailed(
                f"numpy could not be compiled without OpenBLAS (its log: {log_path}). That "
                "needs a C and a C++ compiler and Python's headers (Debian: apt-get install "
                "build-essential python3-dev); install them and build again. Or build with "
                "--keep-openblas: the download is then about 9 MB bigger, over the 30 MB budget."
            )
        built = sorted(Path(wheels).glob("numpy-*.whl"))
        install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        done_install = subprocess.run(
            [*install, "--target", str(target), *map(str, built)], capture_output=True, text=True
        )
        if not built or done_install.returncode != 0:
            raise BuildFailed(
                f"numpy built without OpenBLAS could not be unpacked into {target}: "
                f"{done_install.stderr.strip()} Delete that folder and build again."
            )
    # The options took effect (a build that quietly found a BLAS of its own is refused).
    probe = "import numpy; print(numpy.show_config(mode='dicts')['Build Dependencies']['blas'])"
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=target.parent,
    )
    if "'name': 'none'" not in shown.stdout:
        shutil.rmtree(target, ignore_errors=True)
        raise BuildFailed(
            f"numpy was compiled, but not without BLAS ({shown.stdout.strip()} "
            f"{shown.stderr.strip()}); its log: {log_path}."
        )
    (target / "built-with.json").write_text(json.dumps(built_with(version)), encoding="utf-8")


def run_with_progress(command: list[str], log_path: Path, title: str) -> int:
    """Run a compile, its output into ``log_path``, showing ninja's ``[n/N]`` steps as a
    progress bar (redrawn on a terminal, every tenth otherwise); return its exit status."""
    step = re.compile(r"^\s*\[(\d+)/(\d+)\]")
    interactive = sys.stderr.isatty()
    shown = -1
    with open(log_path, "w", encoding="utf-8") as log:
        # At a lower priority: the compile takes both cores for minutes, and whatever
        # else runs meanwhile (a test suite, a session) should not wait for it.
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=lambda: os.nice(10),  # this process runs no threads: safe here
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            found = step.match(line)
            if not found:
                continue
            done, total = int(found[1]), int(found[2])
            tenth = done * 10 // total
            if interactive:
                bar = "#" * (done * 30 // total)
                print(f"\r{title}: [{bar:<30}] {done}/{total}", end="", file=sys.stderr)
            elif tenth != shown:
                print(f"{title}: {tenth * 10}% ({done}/{total} steps)", file=sys.stderr)
            shown = tenth
        status = process.wait()
    if interactive and shown >= 0:
        print(file=sys.stderr)
    return status


def build_agent(args: argparse.Namespace) -> Path:
    """Run PyInstaller on the spec; return the built file."""
    settings = settings_for(args)
    if importlib.util.find_spec("PyInstaller") is None:
        raise BuildError(
            "PyInstaller is not installed here: install the lock first "
            "(pip install --require-hashes -r requirements/dev.txt)."
        )
    dist = Path(args.dist).resolve()
    env = dict(os.environ)
    env["PUENTE_BUILD_NAME"] = args.name
    # The Python archive too at zlib's best (PyInstaller's default is 6 there).
    env["PYINSTALLER_ZLIB_COMPRESSION_LEVEL"] = "9"
    env.pop("PUENTE_BUILD_SETTINGS", None)
    env.pop("PUENTE_BUILD_WITHOUT_OPENBLAS", None)
    if sys.platform.startswith("linux") and not args.keep_openblas:
        overlay = numpy_without_blas(cache_root())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(overlay), env.get("PYTHONPATH")]))
        env["PUENTE_BUILD_WITHOUT_OPENBLAS"] = "1"  # the spec checks that it worked
    with tempfile.TemporaryDirectory(prefix="puente-build-") as work:
        if settings:
            path = Path(work) / "puente-settings.json"
            path.write_text(json.dumps(settings, indent=1), encoding="utf-8")
            env["PUENTE_BUILD_SETTINGS"] = str(path)
        done = subprocess.run(
            [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--clean"]
            + ["--log-level", "WARN", "--distpath", str(dist)]
            + ["--workpath", str(Path(work) / "build")],
            env=env,
        )
    if done.returncode != 0:
        raise BuildFailed(f"PyInstaller stopped with status {done.returncode} (its log is above)")
    built = dist / (args.name + (".exe" if sys.platform == "win32" else ""))
    if not built.exists():
        raise BuildFailed(f"PyInstaller finished but {built} is missing")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python installers/build.py",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python installers/build.py agent --relay wss://support.example.org "
        "--org-key org.pub.pem --org-name 'Example IT'",
    )
    parser.add_argument(
        "target",
        choices=["agent", "numpy"],
        help="agent: the download; numpy: only the numpy without BLAS that Linux agent "
        "builds bundle, compiled now and cached (for CI, before the tests)",
    )
    parser.add_argument("--relay", help="the relay's wss:// address, baked in")
    parser.add_argument("--org-key", help="the organisation's Ed25519 PUBLIC key file (PEM)")
    parser.add_argument("--org-name", help="the organisation's name, shown to customers")
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (default dist/)")
    parser.add_argument("--name", default="puente-agent", help="file name (default puente-agent)")
    parser.add_argument(
        "--keep-openblas",
        action="store_true",
        help="Linux: bundle numpy as installed, with OpenBLAS (no compiler needed; the "
        "download is about 9 MB bigger)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.target == "agent" and sys.platform.startswith("linux") and not shutil.which("strip"):
        print(
            "warning: 'strip' (binutils) is not installed; the download will be about "
            "10 MB bigger. Install binutils and build again.",
            file=sys.stderr,
        )
    try:
        if args.target == "numpy":
            print(f"numpy without BLAS is ready in {numpy_without_blas(cache_root())}")
            return 0
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
