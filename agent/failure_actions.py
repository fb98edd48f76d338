"""Failure actions on an enrolled device: a check's signed fix, run by itself when the
check's alert opens, and only if the policy the owner accepted allows it.

Rules (deny by default; the order matters):

1. A check that names an ``action`` counts its consecutive failures here. The action
   is due when the count reaches the check's ``failures_before_alert`` (the count at
   which the relay opens the alert), once per run of failures: a pass starts again.
   Nothing is due inside a maintenance window (no alert opens then either). The counts
   are kept in the state folder (``failure-counts.json``, owner only, replaced whole at
   each change), so a restarted service goes on counting where it stopped, as the
   relay does: an action neither runs twice for one run of failures nor misses its
   turn. An unreadable file counts from zero, and says so in the audit log.
2. The fix is the bundle ``fixes/ACTION.puentefix`` in the state folder (copied there
   by ``puente-agent enrol --fix``), verified at every run against the pinned
   organisation key, with the versions seen (no rollback): unsigned, another
   organisation's, altered, expired or made for another system is not run.
3. The permission is the accepted policy's ``failure_actions``
   (:func:`agent.consent.authorize_failure_action`); without it the action is not run.
4. The run is the ``fixes`` capability's own (:func:`agent.capabilities.fixes.run_script`):
   exactly the verified bytes, the declared interpreter, the parameters' defaults, the
   manifest's time limit, as the service's account; a fix that needs administrator
   rights the service lacks, or a missing interpreter, is not run.
5. Every outcome (ran, with its exit status and output; or why it was not run) is an
   entry of the device's audit log (``audit.log`` in the state folder, hash-chained:
   ``puente-agent audit verify``) and a :class:`ActionOutcome` the device link sends to
   the relay, which comments on the alert's ticket. The relay gets the sentence only,
   never the fix's output.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from agent.audit import AgentLog
from agent.capabilities.fixes import FixRequest, interpreter_command, is_admin, run_script
from agent.consent import authorize_failure_action
from agent.enrolment import AUDIT_FILE, FAILURE_COUNTS_FILE, FIXES_FOLDER, DeviceState
from agent.errors import AgentError, ConsentDeclined
from agent.i18n import t
from agent.monitoring.history import owner_only_directory
from agent.monitoring.runner import Report
from agent.trust import FixVersions, current_platform
from protocol.device_policy import CheckDefinition, DevicePolicy
from protocol.errors import FixRequestError, TrustError
from protocol.fixbundle import MAX_BUNDLE_SIZE, resolve_parameters, verify_bundle
from protocol.identity import key_id, load_public_key

BUNDLE_SUFFIX = ".puentefix"
#: Output lines of a run kept in the device's audit log.
AUDIT_OUTPUT_LINES = 20


@dataclass(frozen=True)
class ActionOutcome:
    """What became of one due action. ``outcome``: ran, failed (ran, exit status not
    0 or timed out), refused (the fix did not pass a check) or not_allowed (rule 3)."""

    check: str
    fix: str
    outcome: str
    note: str


def bundle_path(folder: Path, fix_id: str) -> Path:
    return folder / FIXES_FOLDER / f"{fix_id}{BUNDLE_SUFFIX}"


class FailureActions:
    """The failure actions of one enrolled device (rules 1 to 5)."""

    def __init__(self, state: DeviceState, policy: DevicePolicy) -> None:
        self.state = state
        self.policy = policy
        self._organisation_key = load_public_key(state.organisation_key_pem.encode())
        self._failures: dict[str, int] = self._read_counts()

    def due(self, report: Report) -> list[CheckDefinition]:
        """Rule 1: the checks whose action is due after ``report``."""
        due = []
        before = dict(self._failures)
        quiet = self.policy.in_maintenance(int(report.at))
        for result in report.results:
            check = self.policy.check(result.check)
            if check is None or check.action is None:
                continue
            if result.status != "failing":
                self._failures.pop(check.id, None)
                continue
            count = self._failures.get(check.id, 0) + 1
            self._failures[check.id] = count
            if count == check.failures_before_alert and not quiet:
                due.append(check)
        if self._failures != before:
            self._write_counts()
        return due

    @property
    def counts(self) -> dict[str, int]:
        """Consecutive failures per check with an action (rule 1), as kept."""
        return dict(self._failures)

    def _read_counts(self) -> dict[str, int]:
        """The kept counts of the policy's checks with an action; {} if there are none."""
        path = self.state.folder / FAILURE_COUNTS_FILE
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._log(t("actions.counts_unreadable", path=path, reason=exc))
            return {}
        counts = kept.get("failures") if isinstance(kept, dict) else None
        if not isinstance(counts, dict):
            self._log(t("actions.counts_unreadable", path=path, reason="not a table of counts"))
            return {}
        acting = {check.id for check in self.policy.checks if check.action is not None}
        return {
            check: count
            for check, count in counts.items()
            if check in acting
            and isinstance(count, int)
            and not isinstance(count, bool)
            and count > 0
        }

    def _write_counts(self) -> None:
        """Replace the kept counts whole (a crash leaves the old file or the new one)."""
        path = self.state.folder / FAILURE_COUNTS_FILE
        partial = path.with_name(path.name + ".new")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump({"failures": self._failures}, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)

    def _log(self, line: str) -> None:
        log = AgentLog(self.state.folder / AUDIT_FILE)
        try:
            log.write(line)
        finally:
            log.close()

    async def run(self, check: CheckDefinition) -> ActionOutcome:
        """Rules 2 to 5 for one due check; the outcome is in the audit log already."""
        assert check.action is not None
        fix_id = check.action
        try:
            request = self._prepare(fix_id)
            authorization = authorize_failure_action(self.policy.failure_actions, fix_id)
        except ConsentDeclined as exc:
            return self._record(check, fix_id, "not_allowed", str(exc))
        except (TrustError, FixRequestError, AgentError, OSError) as exc:
            return self._record(check, fix_id, "refused", f"The fix {fix_id} was not run: {exc}")
        lines: list[str] = []

        async def keep(label: str, line: str) -> None:
            lines.append(f"{label}: {line.rstrip()}")

        manifest = request.fix.manifest
        outcome = await run_script(request, authorization, keep)
        if outcome.timed_out:
            status, what = "failed", f"was stopped after its time limit of {manifest.timeout} s"
        else:
            status = "ran" if outcome.exit_status == 0 else "failed"
            what = f"ran by itself and ended with exit status {outcome.exit_status}"
        note = (
            f"The failure action {fix_id} {manifest.version} for the check {check.id} {what} "
            f"after {outcome.seconds:.1f} s (the device's policy allows failure actions)."
        )
        return self._record(check, fix_id, status, note, lines[-AUDIT_OUTPUT_LINES:])

    def _prepare(self, fix_id: str) -> FixRequest:
        path = bundle_path(self.state.folder, fix_id)
        try:
            bundle = path.read_bytes()
        except FileNotFoundError:
            raise AgentError(
                f"this device has no copy of it ({path}); enrol it again with --fix"
            ) from None
        if len(bundle) > MAX_BUNDLE_SIZE:
            raise AgentError(f"the bundle is larger than {MAX_BUNDLE_SIZE} bytes")
        fix = verify_bundle(bundle, self._organisation_key, int(time.time()), current_platform())
        if fix.manifest.id != fix_id:
            raise AgentError(f"the bundle in {path.name} is the fix {fix.manifest.id}")
        versions = FixVersions.for_key(key_id(self._organisation_key), self.state.folder)
        versions.check_and_record(fix)
        manifest = fix.manifest
        if manifest.needs_admin and not is_admin():
            raise AgentError("it needs administrator rights, which this service does not have")
        interpreter = interpreter_command(manifest.interpreter)
        if interpreter is None:
            raise AgentError(f"it needs {manifest.interpreter}, which this computer lacks")
        return FixRequest(fix, "run", resolve_parameters(manifest, {}), interpreter)

    def _record(
        self,
        check: CheckDefinition,
        fix_id: str,
        outcome: str,
        note: str,
        output: list[str] | None = None,
    ) -> ActionOutcome:
        log = AgentLog(self.state.folder / AUDIT_FILE)
        try:
            log.write(note)
            if output:
                log.write(f"Output of {fix_id} (last {len(output)} lines): " + " | ".join(output))
        finally:
            log.close()
        return ActionOutcome(check.id, fix_id, outcome, note)


def read_bundles(paths: list[Path], organisation_key_file: Path) -> dict[str, bytes]:
    """The bundles given to ``enrol --fix``, each verified against the organisation
    key now, so that a wrong file is refused before anything is spent (AgentError)."""
    from agent.trust import load_pinned_key

    if not paths:
        return {}
    organisation_key = load_pinned_key(organisation_key_file)
    bundles: dict[str, bytes] = {}
    for path in paths:
        try:
            data = path.read_bytes()
            fix = verify_bundle(data, organisation_key, int(time.time()), current_platform())
        except OSError as exc:
            raise AgentError(t("actions.bundle_unreadable", path=path, reason=exc)) from None
        except TrustError as exc:
            raise AgentError(t("actions.bundle_refused", path=path, reason=exc)) from None
        bundles[fix.manifest.id] = data
    return bundles


def keep_bundles(folder: Path, bundles: dict[str, bytes]) -> list[Path]:
    """Copy verified bundles into the state folder's ``fixes`` (0700, files 0600)."""
    kept = []
    if bundles:
        owner_only_directory(folder / FIXES_FOLDER)
    for fix_id, data in bundles.items():
        path = bundle_path(folder, fix_id)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        kept.append(path)
    return kept
