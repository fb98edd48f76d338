"""``puente-agent checks run``: run an enrolled device's checks and print what they found.

Exit status: 0 every check passed; 3 at least one check is failing or could not tell
(the output says which and what to do); 1 nothing was checked (a refused policy, an
unreadable file; one sentence on stderr says why); 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent.app import fail
from agent.errors import TrustSetupError
from agent.i18n import LANGUAGES, current, set_language, t
from agent.trust import load_pinned_key, state_folder
from protocol.device_policy import DevicePolicy, default_policy, verify_policy
from protocol.errors import TrustError
from protocol.safe_text import safe_text

from .history import MeasurementHistory
from .runner import Report, due_checks, run_policy

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILING = 0, 1, 2, 3

DESCRIPTION = """\
Run the checks of this device's policy and print what they found: disk free, memory
pressure, services and programs that should run, a pending restart, the clock, expiring
certificates, log lines that mean trouble, backups that stopped. Measurements are kept
(owner-only) in the state folder, and a steady trend raises a warning ahead of time:
"the disk / will be full in about 4 days".

Without --policy, the policy this computer was enrolled with runs ('puente-agent
enrol'), or else the standard checks (system disk, memory, pending restart). A
policy is a file signed by your organisation ('puente-tech policy sign'); it is
refused unless --org-key (your organisation's org.pub) signed it.

exit status: 0 all passed, 3 something is failing (see the output), 1 nothing was
checked (the sentence says why), 2 usage
"""

EXAMPLES = """\
examples:
  puente-agent checks run --once
  puente-agent checks run --once --json --policy acme.policy --org-key acme-org/org.pub
  puente-agent checks run --policy acme.policy --org-key acme-org/org.pub   (on schedule)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent checks",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run the policy's checks",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="run every check now and exit (without it: run each on its schedule until stopped)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object per run")
    run.add_argument(
        "--policy", type=Path, help="the signed policy (from 'puente-tech policy sign')"
    )
    run.add_argument(
        "--org-key",
        type=Path,
        default=os.environ.get("PUENTE_ORG_KEY"),
        help="your organisation's public key (org.pub), which must have signed the policy "
        "(default: $PUENTE_ORG_KEY)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get("PUENTE_STATE_DIR"),
        help="where measurements are kept, owner-only (default: $PUENTE_STATE_DIR, or "
        "the agent's state folder/device)",
    )
    run.add_argument("--lang", choices=LANGUAGES, help="language of the sentences")
    return parser


def load_policy(path: Path | None, org_key: Path | None, state: Path) -> DevicePolicy:
    """The policy to run: the signed file, verified against ``org_key``; else the one
    this computer was enrolled with (verified again); else the default.

    Raises TrustSetupError with the sentence to print.
    """
    if path is None:
        from agent.enrolment import read_state

        enrolled = read_state(state)
        if enrolled is None:
            return default_policy()
        try:
            return enrolled.verified_policy()
        except TrustError as exc:
            raise TrustSetupError(
                t("checks.policy_refused", path=state / "device.json", reason=exc)
            ) from None
    if org_key is None:
        raise TrustSetupError(t("checks.policy_needs_key"))
    key = load_pinned_key(org_key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustSetupError(
            t("checks.unreadable", path=path, reason=exc.strerror or exc)
        ) from None
    try:
        return verify_policy(data, key)
    except TrustError as exc:
        raise TrustSetupError(t("checks.policy_refused", path=path, reason=exc)) from None


def print_table(report: Report) -> None:
    """The readable form: one line per check, then the forecasts."""
    if report.policy.organisation:  # a signed policy (the default one names nobody)
        print(
            t(
                "checks.policy",
                number=report.policy.number,
                organisation=safe_text(report.policy.organisation),
            ),
            flush=True,
        )
    else:
        print(t("checks.policy_default"), flush=True)
    if report.in_maintenance:
        print(t("checks.maintenance"), flush=True)
    translator = current()
    rows = [
        (t(f"checks.status.{r.status}"), r.check, r.severity, r.text(translator))
        for r in report.results
    ] + [
        (t("checks.status.forecast"), w.check, w.severity, w.text(translator))
        for w in report.forecasts
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for row in rows:
        head = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        print(f"{head}  {safe_text(row[3])}", flush=True)


def run_checks(args: argparse.Namespace) -> int:
    if args.lang:
        set_language(args.lang)
    state = args.state_dir or state_folder() / "device"
    try:
        policy = load_policy(args.policy, args.org_key, state)
    except TrustSetupError as exc:
        return fail(str(exc))
    last_runs: dict[str, float] = {}
    with MeasurementHistory(state) as history:
        while True:
            now = time.time()
            due = policy.checks if args.once else due_checks(policy, last_runs, now)
            if due:
                report = run_policy(policy, history, checks=due)
                last_runs.update((result.check, report.at) for result in report.results)
                if args.json:
                    print(json.dumps(report.as_dict(current())), flush=True)
                else:
                    print_table(report)
                if args.once:
                    return EXIT_FAILING if report.failing else EXIT_OK
            time.sleep(30)


def checks_main(argv: list[str]) -> int:
    """``puente-agent checks ...``."""
    args = build_parser().parse_args(argv)
    try:
        return run_checks(args)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(checks_main(sys.argv[1:]))
