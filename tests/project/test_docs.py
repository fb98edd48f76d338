"""The docs stay true: PROTOCOL.md's state diagram is generated from the code's table."""

from __future__ import annotations

from pathlib import Path

from protocol.session import STALE, TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]


def state_diagram() -> str:
    lines = [
        "stateDiagram-v2",
        "    [*] --> start",
        "    start --> pake_sent: local start",
        "    start --> sigma_hello_sent: local start (agent, code-less)",
        "    start --> sigma_waiting: local start (technician, code-less)",
    ]
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
        "    sigma_hello_sent --> closed: anything else (protocol error)",
        "    sigma_waiting --> closed: anything else (protocol error)",
        "    sigma_replied --> closed: anything else (protocol error)",
        "    open --> closed: anything else (protocol error)",
        "    resuming --> closed: anything else (protocol error)",
        "    resume_confirming --> closed: anything else (protocol error)",
        "    closed --> [*]",
    ]
    return "\n".join(lines)


def test_protocol_md_state_diagram_matches_code() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    assert state_diagram() in text, "regenerate the diagram: python -m tests.project.test_docs"


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```sh\n")[1:]
    return [block.split("```", 1)[0].strip() for block in blocks]


def test_the_quick_start_is_two_commands_that_install_from_the_lock() -> None:
    first, second = quick_start_commands()
    for command in (first, second):
        assert "\n" not in command  # one copy-pasteable line each
        assert "--require-hashes -r requirements/" in command
        assert "--no-deps" in command  # Puente itself adds nothing beyond the lock
    assert first.endswith("puente-relay serve --data-dir relay-data")
    assert second.startswith(".ci/system-packages && ") and second.endswith("pytest -n 2")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, second = quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second in ci.splitlines()


def rendezvous_diagram() -> str:
    """PROTOCOL.md's relay diagram, from ``relay.rendezvous.TRANSITIONS``.

    Edges that change the phase, labelled with their inputs (R: either role);
    inputs that leave the phase as it is are listed in the module's rules.
    """
    from relay.rendezvous import TRANSITIONS, Phase, When

    edges: dict[tuple[Phase, Phase], list[str]] = {}
    for (phase, input_), rules in TRANSITIONS.items():
        for rule in rules:
            if rule.next is phase:
                continue
            label = input_.kind.value
            if input_.role is not None:
                label += f" {input_.role}"
            if rule.when is not When.ALWAYS:
                label += f" [{rule.when.value}]"
            labels = edges.setdefault((phase, rule.next), [])
            if label not in labels:
                labels.append(label)
    lines = ["stateDiagram-v2", "    [*] --> empty"]
    for (source, target), labels in edges.items():
        name, next_name = source.name.lower(), target.name.lower()
        lines.append(f"    {name} --> {next_name}: {', '.join(labels)}")
    lines.append("    closed --> [*]")
    return "\n".join(lines)


def test_protocol_md_rendezvous_diagram_matches_code() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    assert rendezvous_diagram() in text, "regenerate: python -m tests.project.test_docs relay"


if __name__ == "__main__":
    import sys

    print(rendezvous_diagram() if sys.argv[1:] == ["relay"] else state_diagram())


def test_the_threat_model_names_tests_that_exist() -> None:
    """docs/TRUST.md's threat model points at the test proving each defence: each exists."""
    import re

    text = (ROOT / "docs" / "TRUST.md").read_text(encoding="utf-8")
    section = text.split("## Threat model", 1)[1]
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", section)
    assert len(named) >= 12
    for path, test in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert not test or re.search(rf"def {test}\(", source), f"{path}::{test} does not exist"
    # Continuations (`::name` after a path) name tests of the file before them.
    for path, test in re.findall(r"`(tests/[\w/]+\.py)::\w+`, `::(\w+)`", section):
        assert f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), test
