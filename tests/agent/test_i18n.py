"""Every string the customer sees exists in English and Spanish (acceptance 4 of issue 8).

Three checks: the catalog itself is complete and consistent; the language follows
the system locale; and a whole real session in Spanish shows the customer nothing
that is not a Spanish catalog sentence (or what the technician typed).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from agent import i18n
from agent.capabilities.registry import default_registry
from agent.i18n import (
    CATALOG,
    LANGUAGES,
    Translator,
    detect_language,
    match_template,
    placeholders,
)
from tests.support.customer import Process
from tests.support.relay import RelayProcess

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_has_every_language_with_the_same_placeholders() -> None:
    assert LANGUAGES == ("en", "es")
    for key, texts in CATALOG.items():
        assert set(texts) == set(LANGUAGES), key
        for language in LANGUAGES:
            assert texts[language].strip(), f"{key} is empty in {language}"
        assert placeholders(texts["en"]) == placeholders(texts["es"]), key
    # Spanish is really Spanish, not a copy (a few identical words are fine).
    same = [k for k, v in CATALOG.items() if v["en"] == v["es"]]
    assert len(same) <= 2, same


def test_every_capability_has_a_translated_title_and_description() -> None:
    registry = default_registry()
    for name in registry.names():
        capability = registry.get(name)
        assert capability is not None
        for field in ("title", "description"):
            key = f"cap.{name}.{field}"
            assert key in CATALOG, f"add {key} to agent/i18n.py"
            # The English must be the capability's own words, or Spanish is never used.
            assert match_template(CATALOG[key]["en"], getattr(capability, field)) is not None, (
                f"update {key}"
            )
        if capability.choice is not None:
            key = f"cap.{name}.choice"
            assert key in CATALOG and CATALOG[key]["en"] == capability.choice.question, key


def test_every_key_the_code_uses_exists() -> None:
    """Keys used in agent code with t("...") are all in the catalog."""
    used: set[str] = set()
    for path in (ROOT / "agent").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                used.add(node.args[0].value)
    assert used, "no t() calls found"
    assert sorted(used - set(CATALOG)) == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "es_ES.UTF-8"}, "es"),
        ({"LANG": "es_MX"}, "es"),
        ({"LC_ALL": "es_AR.UTF-8", "LANG": "en_US.UTF-8"}, "es"),
        ({"LANGUAGE": "es:en", "LANG": "en_US.UTF-8"}, "es"),
        ({"LANGUAGE": "", "LC_MESSAGES": "es_CL.UTF-8"}, "es"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),  # not offered: English
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
        ({"PUENTE_LANG": "es", "LANG": "en_US.UTF-8"}, "es"),
        ({"PUENTE_LANG": "en", "LANG": "es_ES.UTF-8"}, "en"),
    ],
)
def test_language_follows_the_system_locale(environ: dict[str, str], expected: str) -> None:
    assert detect_language(environ, "linux") == expected


def test_translator_refuses_unknown_languages_and_keys() -> None:
    with pytest.raises(ValueError):
        Translator("fr")
    with pytest.raises(KeyError):
        Translator("es")("no.such.key")
    assert Translator("es")("consent.allowed", title="Diagnóstico") == "Permitido: Diagnóstico."


def spanish_templates() -> list[re.Pattern[str]]:
    """A regex per Spanish catalog line: placeholders match anything."""
    patterns = []
    for texts in CATALOG.values():
        for line in texts["es"].splitlines():
            parts = re.split(r"\{[a-z_]+\}", line.strip())
            if parts == [""]:
                continue
            patterns.append(re.compile("^" + ".*".join(re.escape(p) for p in parts) + "$"))
    return patterns


def test_a_whole_console_session_in_spanish_shows_only_spanish(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician("Ana Técnica")
    tech = Process(
        [sys.executable, "-m", "technician.cli", "--relay", relay_process.ws_url, "--token"]
        + [token, "session", "--ticket", "HD-9"],
        stdin=True,  # the session lasts until its input ends
    )
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = Process(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "--relay",
            relay_process.ws_url,
            "--console",
            "--log-dir",
            str(tmp_path / "logs"),
            code,
        ],
        env={"PUENTE_LANG": "", "LANGUAGE": "", "LC_ALL": "", "LANG": "es_ES.UTF-8"},
        stdin=True,
    )
    customer.expect(r"^Código de comprobación")
    tech.send("chat buenos días")
    customer.expect(r"^El técnico dice: buenos días")
    customer.send("chat hola")
    customer.expect(r"^Usted: hola")
    tech.expect(r"^chat: the customer says: hola")
    customer.send("frobnicar")
    customer.expect(r"^Orden desconocida")
    customer.send("stop diagnostics")
    customer.expect(r"no está permitido ahora")
    customer.send("end")
    customer.expect(r"^¿Cómo valora esta ayuda, de 1 a 5\?")
    customer.send("5")
    customer.expect(r"^¿Algún comentario")
    customer.send("muy amable")
    customer.expect(r"^Gracias por su valoración.")
    assert customer.wait(30) == 0, customer.output + customer.stderr
    tech.wait(30)

    templates = spanish_templates()
    shown = [line.strip() for line in customer.lines if line.strip()]
    foreign = [line for line in shown if not any(p.match(line) for p in templates)]
    assert foreign == [], foreign
    assert any(line.startswith("Técnico: Ana Técnica") for line in shown)
    assert "Sesión terminada: usted terminó la sesión" in shown, shown
    assert i18n.current().language in LANGUAGES
