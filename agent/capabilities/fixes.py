"""The ``fixes`` capability: run a fix script the organisation signed, one consented run at a time.

Request: ``Request("fixes", ACTION, {"bundle": BYTES, "parameters": {NAME: TEXT}})`` with
ACTION ``run`` (the fix; a fix with a dry-run mode previews first), ``dry_run`` (only
the preview) or ``undo`` (its undo script).

Rules (deny by default; the order matters):

1. Before the customer is asked, :func:`prepare` checks everything without running
   anything: an organisation key is pinned (without one every fix is refused: there
   is nothing to check a signature against); the bundle verifies against that key
   (unsigned, foreign, altered, expired, wrong platform are refused); the action exists
   for this fix; administrator rights are there if the fix needs them; the
   interpreter exists; every parameter value is valid for its declared type. A refusal
   is shown to the customer and returned to the technician as ``REFUSED``.
2. The customer sees the title, their organisation's name, the description, the
   values chosen, the risk, the time limit, and can read the script itself before
   answering. They are asked for EVERY run. A fix with a dry-run mode first runs
   its preview (covered by that yes: it changes nothing), shows what it would
   change, and asks again before the real run.
3. Exactly the verified bytes are written into a fresh directory inside the agent's
   own private folder (mode 0700), re-read and re-hashed, and run by the declared
   interpreter as this user, with ``stdin`` closed, the manifest's timeout, and the
   parameter values as separate argv entries and ``PUENTE_PARAM_<NAME>`` environment
   variables; never a shell command line, so ``; rm -rf ~`` arrives as text.
4. stdout and stderr lines stream to the technician as ``Progress`` messages (and to
   the customer's screen) as they come; the reply carries the exit status. Revoking
   (``stop fixes``) or the timeout kills the whole process group. The directory is
   removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.capabilities.base import (
    Capability,
    CapabilityCall,
    ConsentPrompt,
    PreparedRequest,
    RequestContext,
    RequestRefused,
)
from agent.consent import Authorization
from agent.errors import CapabilityFailed
from agent.i18n import CATALOG, t
from protocol.errors import FixRequestError, TrustError
from protocol.fixbundle import (
    MAX_BUNDLE_SIZE,
    Manifest,
    VerifiedFix,
    digest,
    resolve_parameters,
    verify_bundle,
)
from protocol.identity import iso_date
from protocol.safe_text import safe_text

NAME = "fixes"
ACTIONS = ("run", "dry_run", "undo")

#: Most output lines and bytes forwarded per run; the rest is counted, not sent.
MAX_OUTPUT_LINES = 2000
MAX_OUTPUT_BYTES = 256 * 1024
MAX_LINE_CHARS = 2000

DESCRIPTION = (
    "Run a fix (a small script) that your organisation signed. You see what it does and "
    "can read the script first; you are asked before every run."
)

OutputCallback = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class FixRequest:
    """A request that passed every check of :func:`prepare`."""

    fix: VerifiedFix
    action: str
    values: dict[str, str]
    interpreter: list[str]
    #: The customer chose it themselves (self-help), rather than a technician asking.
    self_help: bool = False


# Checks before anyone is asked ----------------------------------------------------------


def is_admin() -> bool:
    """Whether this process has administrator (root) rights."""
    if os.name == "nt":
        try:
            import ctypes

            return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            return False
    return os.geteuid() == 0


def interpreter_command(interpreter: str) -> list[str] | None:
    """The argv prefix that runs a script with ``interpreter`` here, or None if missing."""
    if interpreter == "sh":
        if os.name != "nt" and Path("/bin/sh").exists():
            return ["/bin/sh"]
        found = shutil.which("sh")
        return [found] if found else None
    if interpreter == "bash":
        found = shutil.which("bash")
        return [found] if found else None
    if interpreter == "powershell":
        found = shutil.which("powershell") or shutil.which("pwsh")
        if not found:
            return None
        return [found, "-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"]
    if interpreter == "python":
        # A frozen agent's sys.executable is the agent itself, not a Python.
        python = None if getattr(sys, "frozen", False) else sys.executable
        python = python or shutil.which("python3") or shutil.which("python")
        return [python, "-I"] if python else None
    return None


def _refuse(message: str) -> RequestRefused:
    return RequestRefused(message)


async def prepare(context: RequestContext) -> PreparedRequest:
    """Check a fix request completely; return what to ask the customer (rule 1)."""
    trust = context.trust
    if trust is None or trust.organisation_key is None:
        raise _refuse(
            "This agent was started without an organisation key, so it cannot check who "
            "wrote a fix; fixes are refused. Use the Puente agent your help desk gave you "
            "(it knows their key), or start it with --org-key."
        )
    bundle = context.args.get("bundle")
    if not isinstance(bundle, bytes) or not bundle:
        raise _refuse("The request carried no fix bundle.")
    if len(bundle) > MAX_BUNDLE_SIZE:
        raise _refuse(f"The fix bundle is larger than {MAX_BUNDLE_SIZE} bytes.")
    try:
        fix = verify_bundle(bundle, trust.organisation_key, trust.now(), trust.platform)
        if trust.fix_versions is not None:  # no rollback to an older signed version
            trust.fix_versions.check_and_record(fix)
    except TrustError as exc:
        raise _refuse(str(exc)) from None
    manifest = fix.manifest
    if context.action == "dry_run" and not manifest.dry_run:
        raise _refuse(f"The fix {manifest.id} has no preview (dry-run) mode.")
    if context.action == "undo" and fix.undo is None:
        raise _refuse(f"The fix {manifest.id} has no undo script.")
    if manifest.needs_admin and not is_admin():
        raise _refuse(
            f"The fix {manifest.id} needs administrator rights, and this agent runs as an "
            "ordinary user. Ask your technician for another way."
        )
    interpreter = interpreter_command(manifest.interpreter)
    if interpreter is None:
        raise _refuse(
            f"The fix {manifest.id} needs {manifest.interpreter}, which this computer does not have."
        )
    parameters = context.args.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _refuse("The fix's parameters must be NAME: VALUE pairs.")
    try:
        values = resolve_parameters(manifest, parameters)
    except FixRequestError as exc:
        raise _refuse(str(exc)) from None
    request = FixRequest(fix, context.action, values, interpreter)
    return PreparedRequest(consent_prompt(request, context.action), request)


def consent_prompt(request: FixRequest, action: str, after_preview: bool = False) -> ConsentPrompt:
    """What the customer is asked before ``action`` of a checked fix (also self-help's)."""
    fix, manifest = request.fix, request.fix.manifest
    # The framing is the agent's (translated); the fix's title and description are the
    # organisation's own words and are shown as they were signed.
    if action == "dry_run":
        title = t("fix.title_preview", title=manifest.title)
        description = t("fix.preview_changes_nothing") + "\n"
    elif action == "undo":
        title = t("fix.title_undo", title=manifest.title)
        description = t("fix.undoes") + "\n"
    elif after_preview:
        title = t("fix.title_after_preview", title=manifest.title)
        description = t("fix.preview_above") + "\n"
    else:
        title = t("fix.title", title=manifest.title)
        description = ""
    description += manifest.description
    lines = [
        t(
            "fix.signed_by",
            organisation=fix.organisation,
            id=manifest.id,
            version=manifest.version,
            until=iso_date(fix.expires_at),
        ),
    ]
    if request.values:
        lines.append(t("fix.values_self_help" if request.self_help else "fix.values"))
        described = {p.name: p.description for p in manifest.parameters}
        for name, value in request.values.items():
            lines.append(f"  {name} = {safe_text(value)}   ({described[name]})")
    lines.append(
        t(
            "fix.risk",
            risk=manifest.risk,
            admin=t("fix.yes" if manifest.needs_admin else "fix.no"),
            timeout=manifest.timeout,
        )
    )
    if action == "run" and manifest.dry_run and not after_preview:
        lines.append(t("fix.asks_again"))
    documents = [("script", fix.script.decode("utf-8", "replace"))]
    if fix.undo is not None:
        documents.append(("undo", fix.undo.decode("utf-8", "replace")))
    return ConsentPrompt(title, description, "\n".join(lines), tuple(documents))


# Running ----------------------------------------------------------------------------------


def private_runs_directory() -> Path:
    """The agent's own folder for fix runs (created 0700; refused if someone else owns it)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "Puente"
    else:
        state = os.environ.get("XDG_STATE_HOME")
        base = (Path(state) if state else Path.home() / ".local" / "state") / "puente"
    runs = base / "fix-runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name != "nt":
        info = os.lstat(runs)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise CapabilityFailed(
                f"{runs} is not a folder owned by this user; remove it and try again."
            )
        os.chmod(runs, 0o700)
    return runs


def _write_exact(directory: Path, name: str, data: bytes, expected_sha256: str) -> Path:
    """Write ``data`` as a new file and check that what is on disk is exactly it."""
    path = directory / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    if digest(path.read_bytes()) != expected_sha256:
        raise CapabilityFailed("The fix changed on disk before it ran; it was not run.")
    return path


def _kill(process: asyncio.subprocess.Process) -> None:
    """End the script and everything it started."""
    if process.returncode is not None:
        return
    if os.name == "nt":
        subprocess.run(
            ["taskkill", "/T", "/F", "/PID", str(process.pid)],
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


@dataclass
class RunOutcome:
    exit_status: int | None
    timed_out: bool
    seconds: float
    lines: int
    dropped_lines: int


async def run_script(
    request: FixRequest,
    authorization: Authorization,
    on_output: OutputCallback,
    *,
    dry_run: bool = False,
    undo: bool = False,
) -> RunOutcome:
    """Run the verified script once (rules 3 and 4); needs a live authorization."""
    authorization.check()
    fix, manifest = request.fix, request.fix.manifest
    if undo:
        assert fix.undo is not None and manifest.undo is not None
        name, data, expected = manifest.undo, fix.undo, digest(fix.undo)
    else:
        name, data, expected = manifest.script, fix.script, fix.script_sha256
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=private_runs_directory()))
    process: asyncio.subprocess.Process | None = None
    readers: list[asyncio.Task[None]] = []
    counts = {"lines": 0, "bytes": 0, "dropped": 0}
    started = time.monotonic()
    try:
        script = _write_exact(directory, name, data, expected)
        argv = [*request.interpreter, str(script), *request.values.values()]
        env = _environment(manifest, request.values, dry_run)
        authorization.check()
        kwargs: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if os.name == "nt"
            else {"start_new_session": True}
        )
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=directory,
            env=env,
            **kwargs,
        )

        async def forward(stream: asyncio.StreamReader | None, label: str) -> None:
            if stream is None:
                return
            async for line in _lines(stream):
                if counts["lines"] >= MAX_OUTPUT_LINES or counts["bytes"] >= MAX_OUTPUT_BYTES:
                    counts["dropped"] += 1
                    continue
                counts["lines"] += 1
                counts["bytes"] += len(line)
                await on_output(label, line)

        readers = [
            asyncio.create_task(forward(process.stdout, "stdout")),
            asyncio.create_task(forward(process.stderr, "stderr")),
        ]
        timed_out = False
        try:
            async with asyncio.timeout(manifest.timeout):
                await asyncio.gather(*readers)
                await process.wait()
        except TimeoutError:
            timed_out = True
            _kill(process)
            await process.wait()
        return RunOutcome(
            exit_status=None if timed_out else process.returncode,
            timed_out=timed_out,
            seconds=round(time.monotonic() - started, 3),
            lines=counts["lines"],
            dropped_lines=counts["dropped"],
        )
    finally:
        if process is not None and process.returncode is None:
            _kill(process)  # revoked or failed: nothing keeps running
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
        for reader in readers:
            reader.cancel()
        shutil.rmtree(directory, ignore_errors=True)


def _environment(manifest: Manifest, values: dict[str, str], dry_run: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
    env["PUENTE_FIX_ID"] = manifest.id
    env["PUENTE_FIX_VERSION"] = manifest.version
    env["PUENTE_DRY_RUN"] = "1" if dry_run else "0"
    for name, value in values.items():
        env[f"PUENTE_PARAM_{name.upper()}"] = value
    return env


async def _lines(stream: asyncio.StreamReader) -> Any:
    """Decoded lines as they come (a partial last line too); long lines are cut."""
    pending = b""
    while True:
        chunk = await stream.read(4096)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            yield raw.decode("utf-8", "replace").rstrip("\r")[:MAX_LINE_CHARS]
        if len(pending) > MAX_LINE_CHARS * 4:
            yield pending.decode("utf-8", "replace")[:MAX_LINE_CHARS]
            pending = b""
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")[:MAX_LINE_CHARS]


# The handler -------------------------------------------------------------------------------


async def handle(call: CapabilityCall) -> dict[str, Any]:
    """Run one consented fix request (the session already checked and asked, rule 2)."""
    request: FixRequest = call.prepared
    manifest = request.fix.manifest
    notify = call.notify or (lambda text: None)
    result: dict[str, Any] = {
        "fix": manifest.id,
        "version": manifest.version,
        "action": call.action,
    }

    def output(phase: str) -> OutputCallback:
        async def send(stream: str, line: str) -> None:
            notify(f"  [{manifest.id}{' preview' if phase == 'preview' else ''}] {safe_text(line)}")
            await call.progress({"phase": phase, "stream": stream, "line": line})

        return send

    def record(outcome: RunOutcome, phase: str) -> None:
        how = (
            f"stopped after {manifest.timeout} s (time limit)"
            if outcome.timed_out
            else f"exit status {outcome.exit_status}"
        )
        call.log.write(f"Fix {manifest.id} {manifest.version} ({phase}) finished: {how}.")
        shown_phase = t(f"fix.phase_{phase}") if f"fix.phase_{phase}" in CATALOG else phase
        if outcome.timed_out:
            notify(
                t(
                    "fix.finished_timeout",
                    title=manifest.title,
                    phase=shown_phase,
                    timeout=manifest.timeout,
                )
            )
        else:
            notify(
                t(
                    "fix.finished_status",
                    title=manifest.title,
                    phase=shown_phase,
                    status=outcome.exit_status,
                )
            )

    def summary(outcome: RunOutcome) -> dict[str, Any]:
        return {
            "exit_status": outcome.exit_status,
            "timed_out": outcome.timed_out,
            "seconds": outcome.seconds,
            "output_lines": outcome.lines,
            "dropped_lines": outcome.dropped_lines,
        }

    call.log.write(
        f"Running fix {manifest.id} {manifest.version} ({call.action}), signed by "
        f"{request.fix.organisation}, script SHA-256 {request.fix.script_sha256[:16]}, "
        f"values {safe_text(repr(request.values))}."
    )
    if call.action in ("dry_run", "undo"):
        phase = "preview" if call.action == "dry_run" else "undo"
        outcome = await run_script(
            request,
            call.authorization,
            output(phase),
            dry_run=call.action == "dry_run",
            undo=call.action == "undo",
        )
        record(outcome, phase)
        return {**result, **summary(outcome)}

    if manifest.dry_run:
        preview = await run_script(request, call.authorization, output("preview"), dry_run=True)
        record(preview, "preview")
        result["preview"] = summary(preview)
        if preview.exit_status != 0:
            notify(t("fix.preview_failed"))
            return {**result, **summary(preview), "stopped_after_preview": True}
        assert call.confirm is not None and call.release is not None
        call.release(call.authorization)
        authorization = await call.confirm(consent_prompt(request, "run", after_preview=True))
        try:
            outcome = await run_script(request, authorization, output("run"))
        finally:
            call.release(authorization)
    else:
        outcome = await run_script(request, call.authorization, output("run"))
    record(outcome, "run")
    return {**result, **summary(outcome)}


def fixes_capability() -> Capability:
    return Capability(
        name=NAME,
        title="Fixes",
        description=DESCRIPTION,
        handler=handle,
        actions=ACTIONS,
        prepare=prepare,
    )
