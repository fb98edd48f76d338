"""The docs stay true: PROTOCOL.md's state diagram is generated from the code's table."""

from __future__ import annotations

from pathlib import Path

from protocol.session import STALE, TRANSITIONS

ROOT = Path(__file__).resolve().parents[1]


def state_diagram() -> str:
    lines = ["stateDiagram-v2", "    [*] --> start", "    start --> pake_sent: local start"]
    for (state, wire), target in TRANSITIONS.items():
        lines.append(f"    {state.name.lower()} --> {target.name.lower()}: recv {wire.name}")
    for state, wire in sorted(STALE, key=lambda pair: (pair[0].name, pair[1].name)):
        lines.append(
            f"    {state.name.lower()} --> {state.name.lower()}: recv {wire.name} (stale, dropped)"
        )
    lines += [
        "    open --> closed: local close",
        "    open --> suspended: local suspend (link to the relay lost)",
        "    open --> resuming: local resume",
        "    suspended --> resuming: local resume",
        "    resuming --> suspended: link lost again",
        "    resume_confirming --> suspended: link lost again",
        "    pake_sent --> closed: anything else (protocol error)",
        "    confirming --> closed: anything else (protocol error)",
        "    open --> closed: anything else (protocol error)",
        "    resuming --> closed: anything else (protocol error)",
        "    resume_confirming --> closed: anything else (protocol error)",
        "    closed --> [*]",
    ]
    return "\n".join(lines)


def test_protocol_md_state_diagram_matches_code() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    assert state_diagram() in text, "regenerate the diagram: python -m tests.test_docs"


if __name__ == "__main__":
    print(state_diagram())
