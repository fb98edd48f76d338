"""``puente-relay fixes``: what the organisation publishes for its customers' self-help.

``fixes publish FILE...`` keeps signed fix bundles (``puente-tech fix sign``) and
signed rule books (``puente-tech org rules``); ``fixes list [--json]`` shows them and
the past cases recorded for each fix; ``fixes withdraw ID`` stops offering a fix.
Called by :mod:`relay.cli`; the checks are :mod:`relay.self_help`'s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from protocol.fixbundle import read_bundle
from protocol.identity import iso_date, short_key_id
from protocol.safe_text import safe_text

from .errors import ConfigError
from .self_help import figures, publish_bundle, publish_rules
from .store import RelayStore


def add_fixes_command(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:  # type: ignore[type-arg]
    """``fixes publish|list|withdraw``; returns the parsers that need the store's options."""
    fixes = commands.add_parser(
        "fixes",
        help="the signed fixes (and rules) customers may run themselves while they wait",
        description="While a help request waits in the queue, the customer's agent looks "
        "for known problems on its computer and offers the organisation's signed fixes "
        "for them, ranked by how often each solved the same problem before (self-help). "
        "Publish here the fix bundles the organisation signed ('puente-tech fix sign') and, "
        "optionally, its signed rule book ('puente-tech org rules'). The relay only keeps "
        "and serves them: every agent checks each one against its pinned organisation key "
        "and never offers what fails.",
    )
    actions = fixes.add_subparsers(dest="action", metavar="ACTION", required=True)
    publish = actions.add_parser(
        "publish",
        help="offer signed fix bundles or a signed rule book for self-help",
        description="Keep each FILE: a signed fix bundle (it replaces an older version of "
        "the same fix for the same systems) or a signed rule book (it replaces a "
        "lower-numbered one). Unsigned, expired or malformed files are refused.",
    )
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE", help="bundle or rule book")
    listing = actions.add_parser(
        "list", help="the fixes offered for self-help, with their past cases"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    withdraw = actions.add_parser("withdraw", help="stop offering a fix for self-help")
    withdraw.add_argument("fix_id", metavar="ID", help="the fix's id (fixes list)")
    return [publish, listing, withdraw]


def run_fixes(store: RelayStore, args: argparse.Namespace) -> int:
    if args.action == "publish":
        for path in args.files:
            _publish(store, path)
        return 0
    if args.action == "withdraw":
        removed = sum(
            store.withdraw_fix(key, args.fix_id)
            for key in {f.organisation_key for f in store.published_fixes()}
        )
        if not removed:
            raise ConfigError(
                f"No fix {args.fix_id!r} is offered for self-help; see 'puente-relay fixes list'."
            )
        print(f"The fix {args.fix_id} is no longer offered for self-help.")
        return 0
    overall, _ = figures(store.outcome_figures())
    published = store.published_fixes()
    for fix in published:
        runs = sum(
            r for by_fix in overall.values() for f, (_, r) in by_fix.items() if f == fix.fix_id
        )
        solved = sum(
            s for by_fix in overall.values() for f, (s, _) in by_fix.items() if f == fix.fix_id
        )
        expires = read_bundle(fix.bundle.encode()).expires_at
        view = {
            "fix": fix.fix_id,
            "version": fix.version,
            "platforms": list(fix.platforms),
            "title": fix.title,
            "organisation_key": fix.organisation_key,
            "expires": iso_date(expires) if expires else None,
            "solved": solved,
            "runs": runs,
        }
        if args.json:
            print(json.dumps(view))
        else:
            print(
                safe_text(
                    f"{fix.fix_id} {fix.version} [{','.join(fix.platforms)}] {fix.title!r}  "
                    f"organisation {short_key_id(fix.organisation_key)}, until "
                    f"{view['expires']}; solved {solved} of {runs} past cases",
                    600,
                )
            )
    if not published and not args.json:
        print(
            "No fixes are offered for self-help; publish signed bundles with "
            "'puente-relay fixes publish FILE'."
        )
    return 0


def _publish(store: RelayStore, path: Path) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} ({exc.strerror}); check the path.") from None
    now = time.time()
    if data.lstrip().startswith(b'{"rules"') or b'"puente-rules/1"' in data[:4096]:
        organisation_key, number = publish_rules(store, data, now)
        print(
            f"Kept rule book number {number} of organisation {short_key_id(organisation_key)} "
            "for self-help; agents use it from their next request."
        )
        return
    try:
        fix = publish_bundle(store, data, now)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    print(
        f"Offered {fix.fix_id} {fix.version} ({', '.join(fix.platforms)}) of organisation "
        f"{short_key_id(fix.organisation_key)} for self-help; agents check its signature "
        "before they offer it."
    )
