"""Words the customer reads both on the join page and in the agent, in English and Spanish.

The relay renders the join page (:mod:`relay.joinpage`) and must not import the agent;
the agent's catalogue (:mod:`agent.i18n`) takes these entries in as they are. So the
page quotes the agent's window title, buttons and prompts word for word, in the
customer's language. Rules of :mod:`agent.i18n` hold here too: every key has a text in
every language, with the same ``{placeholders}``. Pure data: no imports.
"""

from __future__ import annotations

LANGUAGES = ("en", "es")

#: What the agent's window and console show (``app.*``, ``tk.*``).
AGENT_WORDS: dict[str, dict[str, str]] = {
    "app.title": {"en": "Puente remote support", "es": "Asistencia remota Puente"},
    "app.digits_prompt": {
        "en": "Type the 6 digits your technician reads you (session {nameplate}): ",
        "es": "Escriba las 6 cifras que le lee su técnico (sesión {nameplate}): ",
    },
    "tk.code_label": {
        "en": "Session code from your technician:",
        "es": "Código de sesión de su técnico:",
    },
    "tk.digits_label": {
        "en": "Type the 6 digits your technician reads you, after {nameplate}-:",
        "es": "Escriba las 6 cifras que le lee su técnico, tras {nameplate}-:",
    },
    "tk.connect": {"en": "Connect", "es": "Conectar"},
    "tk.sas": {"en": "Check code: {sas}", "es": "Código de comprobación: {sas}"},
    "tk.sas_hint": {
        "en": "Read this code to your technician; it must match the one they see.",
        "es": "Lea este código a su técnico; debe coincidir con el que él ve.",
    },
    "tk.stop_all": {"en": "Stop and end the session", "es": "Detener y terminar la sesión"},
}

#: The join page's own sentences (``join.*``); the agent carries them but never shows them.
PAGE_WORDS: dict[str, dict[str, str]] = {
    "join.page_title": {
        "en": "Your technician is waiting - Puente",
        "es": "Su técnico le espera - Puente",
    },
    "join.heading": {
        "en": "Your technician is waiting for you",
        "es": "Su técnico le está esperando",
    },
    "join.who": {
        "en": "{technician} is ready to help you with ticket {ticket}.",
        "es": "{technician} está preparado para ayudarle con la incidencia {ticket}.",
    },
    "join.switch": {"en": "Leer en español", "es": "Read in English"},
    "join.step_download": {
        "en": "1. Download the Puente agent",
        "es": "1. Descargue el agente Puente",
    },
    "join.download": {"en": "Download for {system}", "es": "Descargar para {system}"},
    "join.this_computer": {"en": "(this computer)", "es": "(este equipo)"},
    "join.file_facts": {
        "en": "{name}, {size} MB. SHA-256: {sha256}",
        "es": "{name}, {size} MB. Huella SHA-256: {sha256}",
    },
    "join.other_systems": {"en": "Other systems", "es": "Otros sistemas"},
    "join.no_downloads": {
        "en": "Your help desk will give you the Puente agent (ask your technician if you do "
        "not have it yet).",
        "es": "Su servicio de asistencia le dará el agente Puente (pídaselo a su técnico si "
        "aún no lo tiene).",
    },
    "join.no_install": {
        "en": "It needs no installation and no administrator rights. Its name carries the "
        "start of your session code, {prefix}.",
        "es": "No necesita instalación ni permisos de administrador. Su nombre lleva el "
        "comienzo de su código de sesión, {prefix}.",
    },
    "join.step_open": {
        "en": "2. Open it and type the 6 digits",
        "es": "2. Ábralo y escriba las 6 cifras",
    },
    "join.open_text": {
        "en": "The window \u201c{title}\u201d opens and asks: \u201c{label}\u201d. Your "
        "technician reads you the 6 digits on the phone; type them and press "
        "\u201c{connect}\u201d.",
        "es": "Se abre la ventana \u201c{title}\u201d y le pide: \u201c{label}\u201d. Su "
        "técnico le lee las 6 cifras por teléfono; escríbalas y pulse \u201c{connect}\u201d.",
    },
    "join.step_check": {
        "en": "3. Check who is helping you",
        "es": "3. Compruebe quién le ayuda",
    },
    "join.check_text": {
        "en": "The window shows your technician's name, the ticket and \u201c{sas}\u201d. "
        "{hint} Nothing happens on your computer until you allow it, and "
        "\u201c{stop}\u201d ends everything at once.",
        "es": "La ventana muestra el nombre de su técnico, la incidencia y \u201c{sas}\u201d. "
        "{hint} No ocurre nada en su equipo hasta que usted lo permita, y "
        "\u201c{stop}\u201d lo termina todo de inmediato.",
    },
    "join.picture_open": {
        "en": "The agent's window asking for the 6 digits",
        "es": "La ventana del agente pidiendo las 6 cifras",
    },
    "join.picture_check": {
        "en": "The agent's window with the technician's name and the check code",
        "es": "La ventana del agente con el nombre del técnico y el código de comprobación",
    },
    "join.blocked_heading": {
        "en": "If your computer will not open the file",
        "es": "Si su equipo no abre el archivo",
    },
    "join.blocked_windows": {
        "en": "Windows: if SmartScreen says \u201cWindows protected your PC\u201d, click "
        "\u201cMore info\u201d, then \u201cRun anyway\u201d. Do this only for the file "
        "from this page.",
        "es": "Windows: si SmartScreen dice \u201cWindows protegió su PC\u201d, pulse "
        "\u201cMás información\u201d y luego \u201cEjecutar de todas formas\u201d. Hágalo "
        "solo con el archivo de esta página.",
    },
    "join.blocked_macos": {
        "en": "macOS: if Gatekeeper says the file cannot be opened, open System Settings, "
        "Privacy & Security, and click \u201cOpen Anyway\u201d.",
        "es": "macOS: si Gatekeeper dice que el archivo no se puede abrir, abra Ajustes del "
        "Sistema, Privacidad y seguridad, y pulse \u201cAbrir igualmente\u201d.",
    },
    "join.blocked_linux": {
        "en": "Linux: a downloaded file cannot run until you allow it. In a terminal, in "
        "your downloads folder, run chmod +x {name} then ./{name}",
        "es": "Linux: un archivo descargado no puede ejecutarse hasta que usted lo permita. "
        "En un terminal, en su carpeta de descargas, ejecute chmod +x {name} y luego ./{name}",
    },
    "join.relay": {
        "en": "If the agent asks for a relay address, use {relay}.",
        "es": "Si el agente le pide la dirección del relé, use {relay}.",
    },
    "join.expires": {
        "en": "The code works until {time} (UTC) and only once. This page never shows the "
        "whole code.",
        "es": "El código sirve hasta las {time} (UTC) y una sola vez. Esta página nunca "
        "muestra el código completo.",
    },
    "join.warning": {
        "en": "Only continue if you contacted your help desk yourself. Never type a code "
        "that an unexpected caller gave you.",
        "es": "Continúe solo si usted mismo contactó con su servicio de asistencia. Nunca "
        "escriba un código que le haya dado alguien que le llamó sin esperarlo.",
    },
    "join.too_many.title": {"en": "Too many tries", "es": "Demasiados intentos"},
    "join.too_many.text": {
        "en": "This address opened too many join pages in a minute; wait a minute and "
        "open the link again.",
        "es": "Desde esta dirección se abrieron demasiadas páginas en un minuto; espere un "
        "minuto y vuelva a abrir el enlace.",
    },
    "join.unknown.title": {"en": "No such session", "es": "Esa sesión no existe"},
    "join.unknown.text": {
        "en": "This link does not belong to any session. Check the link your help desk "
        "sent you, or ask your technician for a new one.",
        "es": "Este enlace no corresponde a ninguna sesión. Compruebe el enlace que le "
        "envió su servicio de asistencia o pida uno nuevo a su técnico.",
    },
    "join.gone.title": {
        "en": "This session code no longer works",
        "es": "Este código de sesión ya no sirve",
    },
    "join.gone.text": {
        "en": "The code for this link has expired or was already used. Ask your "
        "technician for a new session.",
        "es": "El código de este enlace caducó o ya se usó. Pida a su técnico una sesión nueva.",
    },
}

CUSTOMER_WORDS: dict[str, dict[str, str]] = {**AGENT_WORDS, **PAGE_WORDS}


def words(language: str) -> dict[str, str]:
    """Every entry in ``language`` (English for any language not in LANGUAGES)."""
    chosen = language if language in LANGUAGES else LANGUAGES[0]
    return {key: texts[chosen] for key, texts in CUSTOMER_WORDS.items()}
