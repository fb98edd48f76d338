"""Every sentence the customer sees, in English and Spanish, chosen from the system locale.

A small catalog rather than gettext files: the agent is one file a customer downloads,
and a dict needs no compile step, no files next to the binary and no build hooks.
:func:`t` looks a key up in the current language and fills its ``{placeholders}``.

Rules:

1. Every key has a non-empty text in every language of :data:`LANGUAGES`, with the
   same placeholders (a test walks the catalog).
2. The language comes from ``PUENTE_LANG``, then the POSIX variables ``LANGUAGE``,
   ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` (as gettext reads them), then the operating
   system's setting (Windows user UI language, macOS ``AppleLanguages``); anything
   that is not Spanish is English.
3. Capabilities have their title and description here under ``cap.NAME.title`` and
   ``cap.NAME.description``; a capability added without them fails the catalog test.
4. Technician-supplied text (names, chat, reasons) is shown as it came, inside a
   translated sentence.
"""

from __future__ import annotations

import os
import re
import ssl
import string
import subprocess
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent.get_help_words import GET_HELP_WORDS
from agent.self_help_words import SELF_HELP_WORDS
from protocol.customer_words import CUSTOMER_WORDS

if TYPE_CHECKING:
    from agent.consent import ConsentSubject

LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"

CATALOG: dict[str, dict[str, str]] = {
    # Shared with the join page (protocol.customer_words), word for word --------------------
    **CUSTOMER_WORDS,
    # Self-help while a request waits (agent.self_help), in a module of its own --------
    **SELF_HELP_WORDS,
    # The window's Get help (agent.tk_help, agent.tk_self_help), in a module of its own
    **GET_HELP_WORDS,
    # Help requests (agent.help_request) ---------------------------------------------
    "opt.request": {
        "en": "ask your organisation's help desk for help without a code: describe the problem in one line",
        "es": "pida ayuda al servicio técnico de su organización sin código: describa el problema en una línea",
    },
    "opt.category": {
        "en": "the kind of problem, from your organisation's list (asked if left out)",
        "es": "el tipo de problema, de la lista de su organización (se pregunta si falta)",
    },
    "request.collecting": {
        "en": "Collecting a summary of this computer's state for your help desk...",
        "es": "Recopilando un resumen del estado de este equipo para su servicio técnico...",
    },
    "request.digest_intro": {
        "en": "This summary would go with your request (nothing else leaves this computer):",
        "es": "Este resumen acompañaría su solicitud (nada más sale de este equipo):",
    },
    "request.digest_prompt": {
        "en": "Attach this summary to your request? Type y for yes, n for no: ",
        "es": "¿Adjuntar este resumen a su solicitud? Escriba s para sí, n para no: ",
    },
    "request.digest_kept": {
        "en": "The summary stays on this computer.",
        "es": "El resumen se queda en este equipo.",
    },
    "request.no_org_key": {
        "en": "This agent was not set up for an organisation, so it cannot ask for help by itself. Ask your help desk for a session code and start the agent with it.",
        "es": "Este agente no está configurado para una organización, así que no puede pedir ayuda por sí mismo. Pida un código de sesión a su servicio técnico e inicie el agente con él.",
    },
    "request.unreachable": {
        "en": "Could not reach the help desk's relay ({detail}); check your connection and try again.",
        "es": "No se pudo contactar con el relé del servicio técnico ({detail}); compruebe su conexión e inténtelo de nuevo.",
    },
    "request.no_queue": {
        "en": "Your help desk does not take requests from the agent yet; call them for a session code.",
        "es": "Su servicio técnico aún no acepta solicitudes desde el agente; llámelos para obtener un código de sesión.",
    },
    "request.refused": {
        "en": "The help desk could not take your request: {detail}",
        "es": "El servicio técnico no pudo aceptar su solicitud: {detail}",
    },
    "request.bad_categories": {
        "en": "The list of problem kinds the relay sent is not signed by your organisation ({detail}); call your help desk.",
        "es": "La lista de tipos de problema que envió el relé no está firmada por su organización ({detail}); llame a su servicio técnico.",
    },
    "request.unknown_category": {
        "en": "{category} is not one of the kinds of problem your help desk lists; choose one of: {choices}.",
        "es": "{category} no es uno de los tipos de problema de su servicio técnico; elija uno de: {choices}.",
    },
    "request.categories": {
        "en": "What kind of problem is it?",
        "es": "¿Qué tipo de problema es?",
    },
    "request.category_prompt": {
        "en": "Number or name: ",
        "es": "Número o nombre: ",
    },
    "request.no_category": {
        "en": "No kind of problem was chosen, so no request was sent.",
        "es": "No se eligió ningún tipo de problema, así que no se envió la solicitud.",
    },
    "request.soon": {
        "en": "any moment now",
        "es": "en cualquier momento",
    },
    "request.minutes": {
        "en": "about {minutes} min",
        "es": "unos {minutes} min",
    },
    "request.filed": {
        "en": "Your request for help was sent (reference {request}). Keep this window open; closing it cancels the request.",
        "es": "Su solicitud de ayuda se envió (referencia {request}). Mantenga esta ventana abierta; si la cierra, se cancela la solicitud.",
    },
    "request.position": {
        "en": "You are number {position} in the queue; estimated wait: {wait}.",
        "es": "Usted es el número {position} en la cola; espera estimada: {wait}.",
    },
    "request.accepted": {
        "en": "{technician} took your request; connecting now.",
        "es": "{technician} atendió su solicitud; conectando ahora.",
    },
    "request.transferred": {
        "en": "Your request was passed on to another technician (note: {note}); please keep waiting.",
        "es": "Su solicitud se pasó a otro técnico (nota: {note}); siga esperando, por favor.",
    },
    "request.withdrawn": {
        "en": "You left the queue; your request was cancelled and your help desk was told.",
        "es": "Salió de la cola; su solicitud se canceló y se avisó a su servicio técnico.",
    },
    "request.closed": {
        "en": "Your request is closed.",
        "es": "Su solicitud está cerrada.",
    },
    # Program and connection ------------------------------------------------------------
    "app.help": {
        "en": "Let a help-desk technician help you with this computer.\n\n"
        "Your technician gives you a session code such as 417-862-093. Type it here (or "
        "pass it on the command line). You will see the technician's name, the ticket and "
        "a check code to read to them. The technician can do nothing until you allow it, "
        "one permission at a time, and you can stop any permission or the whole session "
        "at any moment.",
        "es": "Permita que un técnico del servicio de asistencia le ayude con este equipo.\n\n"
        "Su técnico le da un código de sesión como 417-862-093. Escríbalo aquí (o "
        "indíquelo en la línea de órdenes). Verá el nombre del técnico, la incidencia y un "
        "código de comprobación para leérselo. El técnico no puede hacer nada hasta que "
        "usted lo permita, permiso a permiso, y usted puede retirar cualquier permiso o "
        "terminar la sesión en cualquier momento.",
    },
    "app.help_org": {
        "en": 'With --org-key (your help desk\'s installer sets it), only technicians certified by that organisation can connect, you see their verified name, and only fixes that organisation signed can run. Without it you see an "unverified technician" warning and fixes are refused.',
        "es": 'Con --org-key (el instalador de su servicio de asistencia lo incluye), solo pueden conectarse técnicos certificados por esa organización, usted ve su nombre verificado y solo pueden ejecutarse arreglos firmados por ella. Sin él verá un aviso de "técnico no verificado" y los arreglos se rechazan.',
    },
    "app.help_log": {
        "en": "Everything done on this computer is written to a hash-chained log you keep (see --log-dir); 'puente-agent audit verify FILE' checks that nobody edited it.",
        "es": "Todo lo que se hace en este equipo queda anotado en un registro encadenado que usted conserva (vea --log-dir); 'puente-agent audit verify ARCHIVO' comprueba que nadie lo ha modificado.",
    },
    "app.checking_revocations": {
        "en": "Checking which technicians your organisation has revoked ...",
        "es": "Comprobando qué técnicos ha revocado su organización ...",
    },
    "app.log_fingerprint": {
        "en": "(its last entry's fingerprint is {fingerprint}; note it to check later)",
        "es": "(la huella de su última entrada es {fingerprint}; anótela para comprobarlo más adelante)",
    },
    "opt.org_key": {
        "en": "your organisation's public key (org.pub): accept only technicians it certified and fixes it signed (default: $PUENTE_ORG_KEY, or the one built in)",
        "es": "la clave pública de su organización (org.pub): aceptar solo técnicos certificados y arreglos firmados por ella (por defecto: $PUENTE_ORG_KEY, o la incluida en el programa)",
    },
    "opt.code": {
        "en": "the session code from your technician",
        "es": "el código de sesión de su técnico",
    },
    "opt.relay": {
        "en": "relay address, wss://... (default: $PUENTE_RELAY, or the one built in)",
        "es": "dirección del servidor, wss://... (por defecto: $PUENTE_RELAY, o la incluida en el programa)",
    },
    "opt.console": {
        "en": "use this terminal instead of a window",
        "es": "usar este terminal en lugar de una ventana",
    },
    "opt.lang": {
        "en": "language of the messages (default: this computer's language)",
        "es": "idioma de los mensajes (por defecto: el de este equipo)",
    },
    "opt.log_dir": {
        "en": "folder for the session log (default: your user's Puente state folder)",
        "es": "carpeta del registro de la sesión (por defecto: la carpeta de estado de Puente de su usuario)",
    },
    "opt.ca_file": {
        "en": "trust this CA certificate for the relay (wss://)",
        "es": "confiar en este certificado de CA para el servidor (wss://)",
    },
    "opt.verbose": {
        "en": "show technical details",
        "es": "mostrar detalles técnicos",
    },
    "app.connecting": {
        "en": "Connecting to the relay to join session {code} ...",
        "es": "Conectando con el servidor para unirse a la sesión {code} ...",
    },
    "app.connecting_code_less": {
        "en": "Connecting to the relay; your organisation's technician will be verified by certificate, no code needed ...",
        "es": "Conectando con el servidor; el técnico de su organización se verificará por certificado, sin código ...",
    },
    "app.code_prompt": {
        "en": "Type the session code your technician gave you: ",
        "es": "Escriba el código de sesión que le dio su técnico: ",
    },
    "app.no_code": {
        "en": "No session code given; run again with the code your technician gave you.",
        "es": "No se indicó ningún código de sesión; vuelva a ejecutar el programa con el código que le dio su técnico.",
    },
    "app.bad_code": {
        "en": "{code} is not a session code. A code looks like 417-862-093: check the digits with your technician.",
        "es": "{code} no es un código de sesión. Un código tiene esta forma: 417-862-093. Compruebe las cifras con su técnico.",
    },
    "app.no_relay": {
        "en": "This program does not know which support server to use: pass --relay wss://... or set PUENTE_RELAY.",
        "es": "Este programa no sabe qué servidor de asistencia usar: indique --relay wss://... o defina PUENTE_RELAY.",
    },
    "app.no_display": {
        "en": "No window can be opened here ({detail}); using this terminal instead.",
        "es": "No se puede abrir una ventana aquí ({detail}); se usará este terminal.",
    },
    "app.interrupted": {"en": "Session ended by you.", "es": "Sesión terminada por usted."},
    "app.log_kept": {
        "en": "A record of this session is in {path}",
        "es": "Hay un registro de esta sesión en {path}",
    },
    "app.waiting": {
        "en": "Waiting for the technician to join ...",
        "es": "Esperando a que el técnico se conecte ...",
    },
    # Session start -----------------------------------------------------------------------
    "session.started": {
        "en": "Puente remote support - session started",
        "es": "Asistencia remota Puente - sesión iniciada",
    },
    "session.verified": {
        "en": "Verified: {name}, {organisation}",
        "es": "Verificado: {name}, {organisation}",
    },
    "session.verified_detail": {
        "en": "This technician holds a certificate from {organisation} that this computer checked, and proved it for this session.",
        "es": "Este técnico tiene un certificado de {organisation} que este equipo ha comprobado, y lo ha demostrado en esta sesión.",
    },
    "session.unverified": {"en": "Technician: {name}", "es": "Técnico: {name}"},
    "session.unverified_warning": {
        "en": "WARNING: this technician is NOT verified. Continue only if you contacted your help desk yourself.",
        "es": "ATENCIÓN: este técnico NO está verificado. Continúe solo si usted mismo contactó con su servicio de asistencia.",
    },
    "session.ticket": {"en": "Ticket: {ticket}", "es": "Incidencia: {ticket}"},
    "session.sas": {
        "en": "Check code: {sas}  (your technician sees the same; read it to them)",
        "es": "Código de comprobación: {sas}  (su técnico ve el mismo; léaselo)",
    },
    "session.nothing_yet": {
        "en": "The technician can do nothing on this computer until you allow it.",
        "es": "El técnico no puede hacer nada en este equipo hasta que usted lo permita.",
    },
    "session.no_hello": {
        "en": "The technician's program did not introduce itself; the session was ended.",
        "es": "El programa del técnico no se presentó; la sesión se terminó.",
    },
    # Console help and commands -------------------------------------------------------------
    "console.help": {
        "en": "You can type at any time:\n"
        "  status          what the technician may do right now\n"
        "  stop NAME       stop one permission (for example: stop diagnostics)\n"
        "  chat TEXT       send a message to the technician\n"
        "  end             end the session now (Ctrl-C works too)",
        "es": "Puede escribir en cualquier momento:\n"
        "  status          qué puede hacer el técnico ahora\n"
        "  stop NOMBRE     retirar un permiso (por ejemplo: stop diagnostics)\n"
        "  chat TEXTO      enviar un mensaje al técnico\n"
        "  end             terminar la sesión ahora (también con Ctrl-C)",
    },
    "console.unknown": {
        "en": "Unknown command '{command}'. Type help for the list.",
        "es": "Orden desconocida '{command}'. Escriba help para ver la lista.",
    },
    "console.not_allowed": {
        "en": "{name} is not allowed right now; nothing to stop.",
        "es": "{name} no está permitido ahora; no hay nada que detener.",
    },
    "console.chat_sent": {"en": "Sent to the technician.", "es": "Enviado al técnico."},
    "console.chat_usage": {
        "en": "Type chat and your message, for example: chat the printer is on",
        "es": "Escriba chat y su mensaje, por ejemplo: chat la impresora está encendida",
    },
    # Consent -------------------------------------------------------------------------------
    "consent.asks": {
        "en": "The technician asks for: {title}",
        "es": "El técnico solicita: {title}",
    },
    "consent.question": {
        "en": "Allow {title}? Type y for yes or n for no, then Enter:",
        "es": "¿Permitir {title}? Escriba s para sí o n para no y pulse Intro:",
    },
    "consent.nobody": {
        "en": "Declined: {title} (nobody can answer here).",
        "es": "Rechazado: {title} (nadie puede responder aquí).",
    },
    "consent.allowed": {"en": "Allowed: {title}.", "es": "Permitido: {title}."},
    "consent.declined": {"en": "Declined: {title}.", "es": "Rechazado: {title}."},
    "consent.documents": {
        "en": "Before you answer you can type {names} (then Enter) to read it.",
        "es": "Antes de responder puede escribir {names} (y pulsar Intro) para leerlo.",
    },
    "consent.or": {"en": " or ", "es": " o "},
    "choice.question": {
        "en": "{question} Press Enter for {default}, or type another, then Enter:",
        "es": "{question} Pulse Intro para usar {default}, o escriba otra y pulse Intro:",
    },
    "choice.using": {"en": "Using {answer}.", "es": "Se usará {answer}."},
    "document.start": {
        "en": "----- {name} ({lines} lines) -----",
        "es": "----- {name} ({lines} líneas) -----",
    },
    "document.end": {"en": "----- end of {name} -----", "es": "----- fin de {name} -----"},
    "tk.show_document": {"en": "Read the {name}", "es": "Leer el {name}"},
    "consent.now_allowed": {"en": "Now allowed: {names}", "es": "Permitido ahora: {names}"},
    "consent.nothing": {"en": "nothing", "es": "nada"},
    # Chat ----------------------------------------------------------------------------------
    "chat.from_technician": {
        "en": "Technician says: {text}",
        "es": "El técnico dice: {text}",
    },
    "chat.from_you": {"en": "You: {text}", "es": "Usted: {text}"},
    # Link state ---------------------------------------------------------------------------
    "link.reconnecting": {
        "en": "The connection was lost; reconnecting ... The session is kept for {grace} seconds and nothing needs to be allowed again.",
        "es": "Se perdió la conexión; reconectando ... La sesión se mantiene {grace} segundos y no hace falta volver a permitir nada.",
    },
    "link.peer_reconnecting": {
        "en": "The technician's connection dropped; waiting for it to come back ...",
        "es": "Se cortó la conexión del técnico; esperando a que vuelva ...",
    },
    "link.resumed": {
        "en": "Connection restored; the session continues.",
        "es": "Conexión restablecida; la sesión continúa.",
    },
    # How a session ended -------------------------------------------------------------------
    "ended.title": {"en": "Session ended: {reason}", "es": "Sesión terminada: {reason}"},
    "ended.by_you": {"en": "you ended the session", "es": "usted terminó la sesión"},
    "ended.by_technician": {
        "en": "the technician ended the session",
        "es": "el técnico terminó la sesión",
    },
    "ended.resume_timeout": {
        "en": "the connection was lost for more than {grace} seconds, so the session ended. Ask your technician for a new code if you still need help.",
        "es": "la conexión estuvo cortada más de {grace} segundos, así que la sesión terminó. Pida un código nuevo a su técnico si aún necesita ayuda.",
    },
    "ended.peer_timeout": {
        "en": "the technician's connection was lost and did not come back in time, so the session ended.",
        "es": "la conexión del técnico se perdió y no volvió a tiempo, así que la sesión terminó.",
    },
    "ended.peer_gone": {
        "en": "the technician disconnected.",
        "es": "el técnico se desconectó.",
    },
    "ended.lost": {
        "en": "the connection to the technician was lost.",
        "es": "se perdió la conexión con el técnico.",
    },
    "ended.no_answer": {
        "en": "the technician's program did not answer.",
        "es": "el programa del técnico no respondió.",
    },
    # Errors of the link --------------------------------------------------------------------
    "error.unavailable": {
        "en": "Could not reach the relay at {relay} (the support server). Check your internet connection and try again.",
        "es": "No se pudo contactar con el servidor de asistencia {relay}. Compruebe su conexión a internet y vuelva a intentarlo.",
    },
    "error.untrusted_certificate": {
        "en": "The relay at {relay} presented a certificate this computer does not trust ({detail}). Check the address; if your support team runs its own certificate authority, start the agent with --ca-file and their certificate.",
        "es": "El servidor de asistencia {relay} presentó un certificado en el que este equipo no confía ({detail}). Compruebe la dirección; si su equipo de soporte usa su propia autoridad de certificación, inicie el agente con --ca-file y su certificado.",
    },
    "error.wrong_code": {
        "en": "The session code did not match on both ends (a mistyped code, or someone tried to intercept). This code no longer works; ask for a new one.",
        "es": "El código de sesión no coincidió en los dos extremos (un código mal escrito, o alguien intentó interceptarlo). Este código ya no sirve; pida uno nuevo.",
    },
    "error.integrity": {
        "en": "A message failed its integrity check (it was altered on the way); the session was ended to keep this computer safe. Start a new session.",
        "es": "Un mensaje no superó la comprobación de integridad (se alteró por el camino); la sesión se terminó para proteger este equipo. Inicie una sesión nueva.",
    },
    "error.version": {
        "en": "The technician's program speaks another version of Puente; both of you need the current release.",
        "es": "El programa del técnico usa otra versión de Puente; ambos necesitan la versión actual.",
    },
    "error.resume_refused": {
        "en": "The reconnected link could not prove it belongs to this session; the session was ended to keep this computer safe. Start a new session.",
        "es": "El enlace reconectado no pudo demostrar que pertenece a esta sesión; la sesión se terminó para proteger este equipo. Inicie una sesión nueva.",
    },
    "error.trust_setup": {
        "en": "This program's organisation settings could not be used, so it did not connect ({detail}). Contact your help desk.",
        "es": "No se pudieron usar los ajustes de organización de este programa, así que no se conectó ({detail}). Contacte con su servicio de asistencia.",
    },
    "error.code_less_unpinned": {
        "en": "This program has no organisation key, so it cannot connect without a session code; ask your technician for a code.",
        "es": "Este programa no tiene clave de organización, así que no puede conectarse sin un código de sesión; pida un código a su técnico.",
    },
    "error.code_less_refused": {
        "en": "This computer only accepts technicians certified by its organisation, and the one who tried to connect could not be verified: {detail} Nothing was shown or allowed.",
        "es": "Este equipo solo acepta técnicos certificados por su organización, y quien intentó conectarse no se pudo verificar: {detail} No se mostró ni se permitió nada.",
    },
    "error.handshake_altered": {
        "en": "Someone between this computer and your organisation altered the connection, so it was not opened. Try again, and tell your help desk if it happens again.",
        "es": "Alguien entre este equipo y su organización alteró la conexión, así que no se abrió. Vuelva a intentarlo y avise a su servicio de asistencia si se repite.",
    },
    "error.untrusted": {
        "en": "This computer only accepts technicians certified by its organisation, and {name} could not be verified: {detail} Nothing was shown or allowed.",
        "es": "Este equipo solo acepta técnicos certificados por su organización, y {name} no se pudo verificar: {detail} No se mostró ni se permitió nada.",
    },
    "error.relay.bad_request": {
        "en": "The support server did not understand this program; download the current version and try again.",
        "es": "El servidor de asistencia no entendió este programa; descargue la versión actual y vuelva a intentarlo.",
    },
    "error.relay.version": {
        "en": "This version of Puente is not supported by the support server; download the current one.",
        "es": "El servidor de asistencia no admite esta versión de Puente; descargue la actual.",
    },
    "error.relay.unauthorized": {
        "en": "The support server refused this program; ask your technician for a new download.",
        "es": "El servidor de asistencia rechazó este programa; pida a su técnico una descarga nueva.",
    },
    "error.relay.unknown_nameplate": {
        "en": "That session code does not exist; check the digits with your technician.",
        "es": "Ese código de sesión no existe; compruebe las cifras con su técnico.",
    },
    "error.relay.expired": {
        "en": "That session code has expired; ask your technician for a new one.",
        "es": "Ese código de sesión ha caducado; pida uno nuevo a su técnico.",
    },
    "error.relay.used": {
        "en": "That session code was already used; ask your technician for a new one.",
        "es": "Ese código de sesión ya se usó; pida uno nuevo a su técnico.",
    },
    "error.relay.role_taken": {
        "en": "Someone is already connected with that code; ask your technician for a new one.",
        "es": "Ya hay alguien conectado con ese código; pida uno nuevo a su técnico.",
    },
    "error.relay.rate_limited": {
        "en": "Too many attempts from this computer; wait a minute and try again.",
        "es": "Demasiados intentos desde este equipo; espere un minuto y vuelva a intentarlo.",
    },
    "error.relay.ended": {"en": "The session was ended.", "es": "La sesión se terminó."},
    "error.relay.idle": {
        "en": "The session was closed because nothing happened for too long.",
        "es": "La sesión se cerró porque no pasó nada durante demasiado tiempo.",
    },
    "error.relay.too_large": {
        "en": "A message was larger than the support server allows; the session ended.",
        "es": "Un mensaje superó el tamaño que admite el servidor de asistencia; la sesión terminó.",
    },
    "error.relay.shutdown": {
        "en": "The support server is restarting; try again in a moment.",
        "es": "El servidor de asistencia se está reiniciando; vuelva a intentarlo en un momento.",
    },
    "error.relay.not_resumable": {
        "en": "The session could not be resumed: it has ended or the time to reconnect ran out.",
        "es": "No se pudo reanudar la sesión: ha terminado o se agotó el tiempo para reconectar.",
    },
    # Capabilities --------------------------------------------------------------------------
    "cap.diagnostics.title": {"en": "Diagnostics", "es": "Diagnóstico"},
    "cap.diagnostics.description": {
        "en": "See basic facts about this computer: system version, computer name, processor, memory, disks, network settings, clock, the busiest programs, whether a restart is pending and recent system messages. Passwords, files and personal documents are not collected.",
        "es": "Ver datos básicos de este equipo: versión del sistema, nombre del equipo, procesador, memoria, discos, ajustes de red, reloj, los programas más activos, si hay un reinicio pendiente y mensajes recientes del sistema. No se recogen contraseñas, archivos ni documentos personales.",
    },
    "cap.screen.title": {"en": "Screen view", "es": "Ver la pantalla"},
    "cap.screen.description": {
        "en": "Let the technician see your screen, live: everything shown on it, including open windows and notifications. They cannot click or type unless you also allow remote control.",
        "es": "Permitir que el técnico vea su pantalla en directo: todo lo que se muestra, incluidas las ventanas abiertas y las notificaciones. No puede hacer clic ni escribir salvo que usted permita también el control remoto.",
    },
    "cap.control.title": {"en": "Remote control", "es": "Control remoto"},
    "cap.control.description": {
        "en": "Let the technician move your mouse pointer, click and type on this computer while you watch. Type 'stop control' at any moment to take it back at once.",
        "es": "Permitir que el técnico mueva el puntero del ratón, haga clic y escriba en este equipo mientras usted mira. Escriba 'stop control' en cualquier momento para retirarlo al instante.",
    },
    "cap.shell.title": {"en": "Shell", "es": "Terminal"},
    "cap.shell.description": {
        "en": "Open a terminal and run commands on this computer as you ({user}). The technician can do anything you could do from a terminal. Every command started is shown here and written to your log.",
        "es": "Abrir un terminal y ejecutar órdenes en este equipo como usted ({user}). El técnico puede hacer todo lo que usted podría hacer desde un terminal. Cada orden iniciada se muestra aquí y queda anotada en su registro.",
    },
    "cap.files.title": {"en": "Files", "es": "Archivos"},
    "cap.files.description": {
        "en": "Read, copy, change and delete files in one folder you choose (and the folders inside it); by default a new folder 'Puente shared' in your home folder. Nothing outside that folder can be seen or changed. Programs that start by themselves (start-up files, shell settings, SSH keys) cannot be changed, but a file copied here could still be a program: only open files from the technician that you expect. Every file copied is shown here and written to your log.",
        "es": "Leer, copiar, cambiar y borrar archivos en una carpeta que usted elige (y las carpetas que contiene); por omisión, una carpeta nueva 'Puente shared' en su carpeta personal. Nada fuera de esa carpeta se puede ver ni cambiar. Los programas que se inician solos (archivos de inicio, ajustes del terminal, claves SSH) no se pueden cambiar, pero un archivo copiado aquí podría ser un programa: abra solo los archivos del técnico que usted espera. Cada archivo copiado se muestra aquí y queda anotado en su registro.",
    },
    "cap.files.choice": {
        "en": "Which folder may the technician use for files?",
        "es": "¿Qué carpeta puede usar el técnico para los archivos?",
    },
    "files.no_folder": {
        "en": "There is no folder '{path}'; type the full path of a folder.",
        "es": "No existe la carpeta '{path}'; escriba la ruta completa de una carpeta.",
    },
    "shell.closed": {
        "en": "Closed the technician's {capability} connections ({count}).",
        "es": "Se cerraron las conexiones de {capability} del técnico ({count}).",
    },
    "shell.ran_command": {
        "en": "The technician ran a command: {command}",
        "es": "El técnico ejecutó una orden: {command}",
    },
    "shell.opened_terminal": {
        "en": "The technician opened a terminal on this computer.",
        "es": "El técnico abrió un terminal en este equipo.",
    },
    "shell.typed": {
        "en": "The technician typed in the terminal: {line}",
        "es": "El técnico escribió en el terminal: {line}",
    },
    "files.deleted_file": {
        "en": "The technician deleted a file: {path}",
        "es": "El técnico borró un archivo: {path}",
    },
    "files.deleted_folder": {
        "en": "The technician deleted a folder: {path}",
        "es": "El técnico borró una carpeta: {path}",
    },
    "files.created_folder": {
        "en": "The technician created a folder: {path}",
        "es": "El técnico creó una carpeta: {path}",
    },
    "files.renamed": {
        "en": "The technician renamed {old} to {new}",
        "es": "El técnico cambió el nombre de {old} a {new}",
    },
    "files.facts": {"en": "{size}, SHA-256 {sha}", "es": "{size}, SHA-256 {sha}"},
    "files.no_facts": {
        "en": "size and hash unavailable: {error}",
        "es": "tamaño y huella no disponibles: {error}",
    },
    "files.copied_to": {
        "en": "The technician copied a file to this computer: {path} ({facts})",
        "es": "El técnico copió un archivo a este equipo: {path} ({facts})",
    },
    "files.copied_from": {
        "en": "The technician copied a file from this computer: {path} ({sent} bytes read; {facts})",
        "es": "El técnico copió un archivo de este equipo: {path} ({sent} bytes leídos; {facts})",
    },
    "screen.no_display": {
        "en": "Puente cannot see a screen on this computer: no graphical desktop is running (no DISPLAY). Screen view and remote control are not possible in this session; diagnostics and the other tools still work.",
        "es": "Puente no puede ver una pantalla en este equipo: no hay un escritorio gráfico en marcha (sin DISPLAY). Ver la pantalla y el control remoto no son posibles en esta sesión; el diagnóstico y las demás herramientas siguen funcionando.",
    },
    "screen.from_service": {
        "en": "The screen is not available from the service on this computer: Puente runs here as a system service, which cannot reach the desktop of the person signed in. Screen view and remote control are not possible in this unattended session; diagnostics and the other tools still work.",
        "es": "La pantalla no está disponible desde el servicio en este equipo: Puente funciona aquí como un servicio del sistema, que no puede llegar al escritorio de la persona que tiene la sesión abierta. Ver la pantalla y el control remoto no son posibles en esta sesión desatendida; el diagnóstico y las demás herramientas siguen funcionando.",
    },
    "screen.wayland": {
        "en": "This computer's desktop uses Wayland, which does not let programs like Puente see or control the screen. To share the screen, log out and choose an Xorg session (for example 'GNOME on Xorg') at the login screen, then start a new session.",
        "es": "El escritorio de este equipo usa Wayland, que no permite a programas como Puente ver ni controlar la pantalla. Para compartir la pantalla, cierre la sesión y elija una sesión Xorg (por ejemplo 'GNOME on Xorg') en la pantalla de inicio, y luego inicie una sesión nueva.",
    },
    "cap.clipboard.title": {"en": "Clipboard", "es": "Portapapeles"},
    "cap.clipboard.description": {
        "en": "Let the technician read the text on your clipboard and put text on it, only when they ask (each time is shown here and written to your log). Copy nothing private while this is allowed; type 'stop clipboard' to take it back.",
        "es": "Permitir que el técnico lea el texto de su portapapeles y ponga texto en él, solo cuando lo pida (cada vez se muestra aquí y queda anotada en su registro). No copie nada privado mientras esté permitido; escriba 'stop clipboard' para retirarlo.",
    },
    "clipboard.was_read": {
        "en": "The technician read your clipboard ({count} characters).",
        "es": "El técnico leyó su portapapeles ({count} caracteres).",
    },
    "clipboard.was_written": {
        "en": "The technician put text on your clipboard ({count} characters).",
        "es": "El técnico puso texto en su portapapeles ({count} caracteres).",
    },
    "clipboard.too_long": {
        "en": "The clipboard text is longer than {limit} characters; copy less and try again.",
        "es": "El texto del portapapeles tiene más de {limit} caracteres; copie menos y vuelva a intentarlo.",
    },
    "clipboard.no_desktop": {
        "en": "This computer has no desktop session here, so there is no clipboard to share.",
        "es": "Este equipo no tiene aquí una sesión de escritorio, así que no hay portapapeles que compartir.",
    },
    "clipboard.no_tool": {
        "en": "No clipboard tool was found on this computer; install xclip or xsel (or wl-clipboard on Wayland) to share the clipboard.",
        "es": "No se encontró ninguna herramienta de portapapeles en este equipo; instale xclip o xsel (o wl-clipboard en Wayland) para compartir el portapapeles.",
    },
    "cap.fixes.title": {"en": "Fixes", "es": "Arreglos"},
    "cap.fixes.description": {
        "en": "Run a fix (a small script) that your organisation signed. You see what it does and can read the script first; you are asked before every run.",
        "es": "Ejecutar un arreglo (un pequeño programa) firmado por su organización. Usted ve lo que hace y puede leer el programa antes; se le pregunta antes de cada ejecución.",
    },
    # Fixes ---------------------------------------------------------------------------------
    "fix.title": {"en": "Fix: {title}", "es": "Arreglo: {title}"},
    "fix.title_preview": {
        "en": "Preview of fix: {title}",
        "es": "Vista previa del arreglo: {title}",
    },
    "fix.title_undo": {"en": "Undo fix: {title}", "es": "Deshacer el arreglo: {title}"},
    "fix.title_after_preview": {
        "en": "Fix: {title}, now that you have seen the preview",
        "es": "Arreglo: {title}, ahora que ha visto la vista previa",
    },
    "fix.preview_changes_nothing": {
        "en": "It only lists what the fix would change; it changes nothing.",
        "es": "Solo enumera lo que el arreglo cambiaría; no cambia nada.",
    },
    "fix.undoes": {
        "en": "It undoes what this fix changed earlier.",
        "es": "Deshace lo que este arreglo cambió antes.",
    },
    "fix.preview_above": {
        "en": "The preview above lists what it will change.",
        "es": "La vista previa de arriba enumera lo que va a cambiar.",
    },
    "fix.signed_by": {
        "en": "Signed by {organisation} (fix {id}, version {version}; signature valid until {until}).",
        "es": "Firmado por {organisation} (arreglo {id}, versión {version}; firma válida hasta {until}).",
    },
    "fix.values": {
        "en": "Values chosen by the technician:",
        "es": "Valores elegidos por el técnico:",
    },
    "fix.values_self_help": {
        "en": "Values found on this computer:",
        "es": "Valores encontrados en este equipo:",
    },
    "fix.risk": {
        "en": "Risk: {risk}. Needs administrator rights: {admin}. Stopped automatically after {timeout} seconds.",
        "es": "Riesgo: {risk}. Necesita permisos de administrador: {admin}. Se detiene automáticamente tras {timeout} segundos.",
    },
    "fix.yes": {"en": "yes", "es": "sí"},
    "fix.no": {"en": "no", "es": "no"},
    "fix.asks_again": {
        "en": "It first shows you what it would change, and asks you again before changing anything.",
        "es": "Primero le muestra lo que cambiaría, y le vuelve a preguntar antes de cambiar nada.",
    },
    "fix.phase_run": {"en": "run", "es": "ejecución"},
    "fix.phase_preview": {"en": "preview", "es": "vista previa"},
    "fix.phase_undo": {"en": "undo", "es": "deshacer"},
    "fix.finished_status": {
        "en": "{title} ({phase}) finished: exit status {status}.",
        "es": "{title} ({phase}) terminó: código de salida {status}.",
    },
    "fix.finished_timeout": {
        "en": "{title} ({phase}) finished: stopped after {timeout} s (time limit).",
        "es": "{title} ({phase}) terminó: detenido tras {timeout} s (límite de tiempo).",
    },
    "fix.preview_failed": {
        "en": "The preview did not succeed, so the fix was not run.",
        "es": "La vista previa no salió bien, así que el arreglo no se ejecutó.",
    },
    "fix.refused": {
        "en": "Refused before anything ran: {detail}",
        "es": "Rechazado antes de ejecutar nada: {detail}",
    },
    # Diagnostics review --------------------------------------------------------------------
    "review.title": {"en": "Check what will be sent", "es": "Revise lo que se enviará"},
    "review.intro": {
        "en": "These facts about this computer are ready for the technician. Untick anything you do not want to send, then press Send.",
        "es": "Estos datos de este equipo están listos para el técnico. Desmarque lo que no quiera enviar y pulse Enviar.",
    },
    "review.send": {"en": "Send", "es": "Enviar"},
    "review.send_nothing": {"en": "Send nothing", "es": "No enviar nada"},
    "review.withheld": {
        "en": "Not sent (you struck it out): {items}",
        "es": "No enviado (lo tachó usted): {items}",
    },
    "review.section.os": {"en": "Operating system", "es": "Sistema operativo"},
    "review.section.hostname": {"en": "Computer name", "es": "Nombre del equipo"},
    "review.section.uptime": {"en": "Time since start-up", "es": "Tiempo desde el arranque"},
    "review.section.cpu": {"en": "Processor", "es": "Procesador"},
    "review.section.memory": {"en": "Memory", "es": "Memoria"},
    "review.section.disks": {"en": "Disks", "es": "Discos"},
    "review.section.network": {"en": "Network", "es": "Red"},
    "review.section.clock": {"en": "Clock", "es": "Reloj"},
    "review.section.processes": {"en": "Busiest programs", "es": "Programas más activos"},
    "review.section.system_log": {
        "en": "Recent system messages",
        "es": "Mensajes recientes del sistema",
    },
    "review.section.pending_reboot": {"en": "Pending restart", "es": "Reinicio pendiente"},
    # The window ----------------------------------------------------------------------------
    "tk.try_again": {"en": "Try again", "es": "Reintentar"},
    "tk.verified": {
        "en": "Verified: {name}, {organisation}",
        "es": "Verificado: {name}, {organisation}",
    },
    "tk.unverified": {
        "en": "Unverified technician: {name}",
        "es": "Técnico no verificado: {name}",
    },
    "tk.allowed_heading": {"en": "Allowed now", "es": "Permitido ahora"},
    "tk.nothing_allowed": {
        "en": "Nothing. The technician can do nothing until you allow it.",
        "es": "Nada. El técnico no puede hacer nada hasta que usted lo permita.",
    },
    "tk.stop_one": {"en": "Stop", "es": "Detener"},
    "tk.chat_heading": {"en": "Chat with the technician", "es": "Chat con el técnico"},
    "tk.send": {"en": "Send", "es": "Enviar"},
    "tk.consent_title": {"en": "Permission requested", "es": "Permiso solicitado"},
    "tk.consent_heading": {
        "en": "{name} asks for: {title}",
        "es": "{name} solicita: {title}",
    },
    "tk.consent_hint": {
        "en": "You can stop this at any moment with the Stop buttons.",
        "es": "Puede detenerlo en cualquier momento con los botones Detener.",
    },
    "tk.allow": {"en": "Allow", "es": "Permitir"},
    "tk.deny": {"en": "Deny", "es": "Denegar"},
    "tk.banner_screen": {
        "en": "Your screen is being shared with {name}",
        "es": "Su pantalla se está compartiendo con {name}",
    },
    "tk.banner_control": {
        "en": "{name} can see your screen and control your mouse and keyboard",
        "es": "{name} puede ver su pantalla y controlar su ratón y teclado",
    },
    "tk.banner_stop": {"en": "Stop sharing", "es": "Dejar de compartir"},
    "unattended.title": {
        "en": "Unattended access request",
        "es": "Solicitud de acceso desatendido",
    },
    "unattended.question": {
        "en": "{name} ({organisation}, verified) asks to connect to this computer for ticket {ticket}. This computer's policy would let them use: {capabilities}.",
        "es": "{name} ({organisation}, verificado) pide conectarse a este equipo por el caso {ticket}. La directiva de este equipo le permitiría usar: {capabilities}.",
    },
    "unattended.deny_on_silence": {
        "en": "If nobody answers within {seconds} seconds, the answer is no.",
        "es": "Si nadie responde en {seconds} segundos, la respuesta es no.",
    },
    "unattended.allow_on_silence": {
        "en": "If nobody answers within {seconds} seconds, the technician is let in; you can end the session at any time.",
        "es": "Si nadie responde en {seconds} segundos, el técnico entra; usted puede terminar la sesión en cualquier momento.",
    },
    "unattended.countdown": {"en": "{seconds} s left", "es": "quedan {seconds} s"},
    "unattended.console_prompt": {
        "en": "Let them in? Type yes or no:",
        "es": "¿Le deja entrar? Escriba sí o no:",
    },
    "unattended.nothing": {
        "en": "nothing (the policy lists no capabilities)",
        "es": "nada (la directiva no enumera ninguna capacidad)",
    },
    "unattended.banner": {
        "en": "Unattended session: {name} ({organisation}) is connected to this computer for ticket {ticket}",
        "es": "Sesión desatendida: {name} ({organisation}) está conectado a este equipo por el caso {ticket}",
    },
    "unattended.end": {"en": "End session", "es": "Terminar la sesión"},
    "unattended.nothing_yet": {
        "en": "Nothing yet. In this unattended session the policy this computer's owner accepted decides what the technician may use; you can end it at any time.",
        "es": "Nada todavía. En esta sesión desatendida decide la directiva que aceptó el dueño de este equipo qué puede usar el técnico; usted puede terminarla en cualquier momento.",
    },
    "unattended.asked": {
        "en": "A technician asks for an unattended session (ticket {ticket}); this computer's policy decides.",
        "es": "Un técnico pide una sesión desatendida (caso {ticket}); decide la directiva de este equipo.",
    },
    "unattended.busy": {
        "en": "A technician asked for another unattended session (ticket {ticket}) while one is running; it was not started.",
        "es": "Un técnico pidió otra sesión desatendida (caso {ticket}) mientras hay una en curso; no se ha iniciado.",
    },
    "unattended.waiting": {
        "en": "A technician of your help desk asks to connect to this computer. Checking who it is...",
        "es": "Un técnico de su servicio de asistencia pide conectarse a este equipo. Comprobando quién es...",
    },
    "unattended.refused_never": {
        "en": "{name} asked to connect without you; this computer's policy never allows that, so they were refused.",
        "es": "{name} pidió conectarse sin usted; la directiva de este equipo nunca lo permite, así que se le rechazó.",
    },
    "unattended.refused_no": {
        "en": "You said no: {name} was not let in.",
        "es": "Usted dijo que no: {name} no ha entrado.",
    },
    "unattended.refused_silence": {
        "en": "Nobody answered within {seconds} seconds, so {name} was not let in.",
        "es": "Nadie respondió en {seconds} segundos, así que {name} no ha entrado.",
    },
    "unattended.not_enrolled": {
        "en": "This computer is not enrolled in {folder}; there is nothing to connect to. Enrol it with 'puente-agent enrol'.",
        "es": "Este equipo no está inscrito en {folder}; no hay nada a lo que conectarse. Inscríbalo con 'puente-agent enrol'.",
    },
    "unattended.policy_unusable": {
        "en": "This computer's kept policy cannot be verified ({detail}); unattended access is refused. Unenrol it and enrol it again.",
        "es": "La directiva guardada de este equipo no se puede verificar ({detail}); se rechaza el acceso desatendido. Dé de baja el equipo e inscríbalo de nuevo.",
    },
    # The signed-in user's helper (agent/user_helper.py) --------------------------------
    "helper.connected": {
        "en": "Puente is ready: if your help desk asks to connect to this computer, you will be asked here.",
        "es": "Puente está listo: si su servicio de asistencia pide conectarse a este equipo, se le preguntará aquí.",
    },
    "helper.waiting_service": {
        "en": "Waiting for this computer's Puente service ({path})...",
        "es": "Esperando al servicio Puente de este equipo ({path})...",
    },
    "helper.no_socket": {
        "en": "No Puente service of this computer was found in {folder}. Is this computer enrolled ('puente-agent enrol')? Name the service's socket with --socket.",
        "es": "No se encontró ningún servicio Puente de este equipo en {folder}. ¿Está inscrito este equipo ('puente-agent enrol')? Indique el socket del servicio con --socket.",
    },
    "helper.no_display": {
        "en": "The helper shows your help desk's requests in your desktop, and there is none here ({detail}). It starts by itself when you sign in to your desktop.",
        "es": "El asistente muestra las solicitudes de su servicio de asistencia en su escritorio, y aquí no hay ninguno ({detail}). Se inicia solo cuando usted entra en su escritorio.",
    },
    "helper.refused_not_signed_in": {
        "en": "This computer's Puente service did not accept this helper: only the person signed in at the screen is asked ({detail}). Nothing will be shown here.",
        "es": "El servicio Puente de este equipo no aceptó este asistente: solo se pregunta a la persona que tiene la sesión abierta en la pantalla ({detail}). Aquí no se mostrará nada.",
    },
    "helper.refused_other": {
        "en": "This computer's Puente service did not accept this helper ({detail}). Sign out and in again; if it happens again, tell your help desk.",
        "es": "El servicio Puente de este equipo no aceptó este asistente ({detail}). Cierre la sesión y vuelva a entrar; si vuelve a ocurrir, avise a su servicio de asistencia.",
    },
    "helper.asked": {
        "en": "A technician of your help desk asks to connect to this computer.",
        "es": "Un técnico de su servicio de asistencia pide conectarse a este equipo.",
    },
    "helper.you_allowed": {
        "en": "You let the technician in.",
        "es": "Usted dejó entrar al técnico.",
    },
    "helper.you_denied": {
        "en": "You said no: the technician was not let in.",
        "es": "Usted dijo que no: el técnico no ha entrado.",
    },
    "helper.closed_answered": {
        "en": "Another person signed in at this computer answered first.",
        "es": "Otra persona con la sesión abierta en este equipo respondió primero.",
    },
    "helper.time_up_denied": {
        "en": "Nobody answered in time, so the technician was not let in.",
        "es": "Nadie respondió a tiempo, así que el técnico no ha entrado.",
    },
    "helper.time_up_allowed": {
        "en": "Nobody answered in time, so this computer's policy lets the technician in. You can end the session at any time.",
        "es": "Nadie respondió a tiempo, así que la directiva de este equipo deja entrar al técnico. Usted puede terminar la sesión en cualquier momento.",
    },
    "helper.closed_cancelled": {
        "en": "The request was withdrawn.",
        "es": "La solicitud se ha retirado.",
    },
    "helper.session_on": {
        "en": "A technician is connected to this computer. The purple banner at the bottom of the screen stays for the whole session: press End session there at any time.",
        "es": "Un técnico está conectado a este equipo. La franja morada de la parte inferior de la pantalla se queda durante toda la sesión: pulse Terminar la sesión en ella en cualquier momento.",
    },
    "helper.session_over": {
        "en": "The unattended session is over.",
        "es": "La sesión desatendida ha terminado.",
    },
    "service.helpers_listening": {
        "en": "The helpers of the people signed in at this computer connect at {path}.",
        "es": "Los asistentes de las personas con la sesión abierta en este equipo se conectan en {path}.",
    },
    "service.autostart_written": {
        "en": "Installed {path}: it starts the helper that shows unattended-access requests and their banner in the desktop of whoever signs in (from their next sign-in).",
        "es": "Instalado {path}: inicia el asistente que muestra las solicitudes de acceso desatendido y su franja en el escritorio de quien entre en el equipo (desde su próxima entrada).",
    },
    "service.helper_unreachable": {
        "en": "Warning: other accounts cannot run {path} (a folder above it is private), so the helper will not start in their desktops; install Puente where everyone can run it (for example a virtual environment in /opt) and enrol again.",
        "es": "Aviso: las demás cuentas no pueden ejecutar {path} (una carpeta por encima es privada), así que el asistente no se iniciará en sus escritorios; instale Puente donde todos puedan ejecutarlo (por ejemplo, un entorno virtual en /opt) e inscriba el equipo de nuevo.",
    },
    "helper.service_gone": {
        "en": "The link to this computer's Puente service was lost; reconnecting.",
        "es": "Se perdió la conexión con el servicio Puente de este equipo; reconectando.",
    },
    "tk.ended": {"en": "The session has ended.", "es": "La sesión ha terminado."},
    "tk.close": {"en": "Close", "es": "Cerrar"},
    "tk.choose": {"en": "Choose…", "es": "Elegir…"},
    "tk.ok": {"en": "OK", "es": "Aceptar"},
    "tk.cancel": {"en": "Cancel", "es": "Cancelar"},
    "tk.rating_question": {
        "en": "How would you rate this help?",
        "es": "¿Cómo valora esta ayuda?",
    },
    "tk.rating_scale": {"en": "1 = poor, 5 = excellent", "es": "1 = mala, 5 = excelente"},
    "tk.rating_send": {"en": "Send rating", "es": "Enviar valoración"},
    "tk.rating_skip": {"en": "Skip", "es": "Omitir"},
    "tk.comment_label": {"en": "Comment (optional):", "es": "Comentario (opcional):"},
    # Checks on an enrolled device (agent/monitoring) --------------------------------------
    "check.error": {
        "en": "The check {check} could not run: {reason}. Check the policy's setting or ask your help desk.",
        "es": "La comprobación {check} no pudo ejecutarse: {reason}. Revise el ajuste de la directiva o consulte a su servicio de asistencia.",
    },
    "check.disk_free.ok": {
        "en": "{path}: {free} free of {total} ({percent}% free).",
        "es": "{path}: {free} libres de {total} ({percent}% libre).",
    },
    "check.disk_free.failing": {
        "en": "{path} is nearly full: only {free} free of {total} ({percent}% free), and the policy asks for at least {wanted}. Delete or move files you no longer need.",
        "es": "{path} está casi lleno: solo quedan {free} libres de {total} ({percent}% libre), y la directiva pide al menos {wanted}. Borre o mueva archivos que ya no necesite.",
    },
    "check.memory.ok": {
        "en": "Memory: {used}% in use, swap {swap}%.",
        "es": "Memoria: {used}% en uso, intercambio {swap}%.",
    },
    "check.memory.failing": {
        "en": "Memory is under pressure: {used}% in use and swap at {swap}% (limits {max_used}% and {max_swap}%). Close programs you are not using.",
        "es": "La memoria está bajo presión: {used}% en uso e intercambio al {swap}% (límites {max_used}% y {max_swap}%). Cierre los programas que no esté usando.",
    },
    "check.process.ok": {
        "en": "The program {name} is running ({count} processes).",
        "es": "El programa {name} está en marcha ({count} procesos).",
    },
    "check.process.failing": {
        "en": "The program {name} is not running; start it again or ask your help desk.",
        "es": "El programa {name} no está en marcha; vuelva a iniciarlo o consulte a su servicio de asistencia.",
    },
    "check.service.ok": {
        "en": "The service {name} is running.",
        "es": "El servicio {name} está en marcha.",
    },
    "check.service.failing": {
        "en": "The service {name} is not running (state: {state}); start it again or ask your help desk.",
        "es": "El servicio {name} no está en marcha (estado: {state}); vuelva a iniciarlo o consulte a su servicio de asistencia.",
    },
    "check.reboot.ok": {
        "en": "No restart is pending.",
        "es": "No hay ningún reinicio pendiente.",
    },
    "check.reboot.failing": {
        "en": "This computer is waiting for a restart to finish installing updates; restart it when convenient.",
        "es": "Este equipo espera un reinicio para terminar de instalar actualizaciones; reinícielo cuando le venga bien.",
    },
    "check.reboot.unknown": {
        "en": "This computer gives no way to tell whether a restart is pending.",
        "es": "Este equipo no permite saber si hay un reinicio pendiente.",
    },
    "check.clock.ok": {
        "en": "The clock is right (off by {seconds} s from {source}).",
        "es": "El reloj está en hora (diferencia de {seconds} s con {source}).",
    },
    "check.clock.failing": {
        "en": "The clock is off by {seconds} seconds compared with {source}; turn on automatic date and time.",
        "es": "El reloj tiene una diferencia de {seconds} segundos con {source}; active la fecha y hora automáticas.",
    },
    "check.certificate.ok": {
        "en": "All {count} certificates are valid for more than {days} days.",
        "es": "Los {count} certificados son válidos durante más de {days} días.",
    },
    "check.certificate.failing": {
        "en": "The certificate {path} expires on {date} (in {days} days); renew it.",
        "es": "El certificado {path} caduca el {date} (dentro de {days} días); renuévelo.",
    },
    "check.certificate.expired": {
        "en": "The certificate {path} expired on {date}; renew it now.",
        "es": "El certificado {path} caducó el {date}; renuévelo ya.",
    },
    "check.certificate.none": {
        "en": "No certificate found at {paths}; correct the paths in the policy.",
        "es": "No se encontró ningún certificado en {paths}; corrija las rutas de la directiva.",
    },
    "check.log.ok": {
        "en": "{path}: {count} matching lines (at most {limit} allowed).",
        "es": "{path}: {count} líneas coinciden (se permiten como máximo {limit}).",
    },
    "check.log.failing": {
        "en": "{path} has {count} lines matching the policy's pattern (at most {limit} allowed); your help desk can see which.",
        "es": "{path} tiene {count} líneas que coinciden con el patrón de la directiva (se permiten como máximo {limit}); su servicio de asistencia puede ver cuáles.",
    },
    "check.backup.ok": {
        "en": "The latest backup ({path}) is {hours} hours old.",
        "es": "La última copia de seguridad ({path}) tiene {hours} horas.",
    },
    "check.backup.failing": {
        "en": "The latest backup ({path}) is {hours} hours old, older than {limit} hours; check that backups still run.",
        "es": "La última copia de seguridad ({path}) tiene {hours} horas, más de {limit}; compruebe que las copias siguen haciéndose.",
    },
    "check.backup.none": {
        "en": "No backup found at {path}; check that backups run.",
        "es": "No se encontró ninguna copia de seguridad en {path}; compruebe que las copias se hacen.",
    },
    "forecast.disk": {
        "en": "The disk {path} will be full in about {days} days at the current rate (confidence {confidence}%).",
        "es": "El disco {path} estará lleno en unos {days} días al ritmo actual (confianza {confidence}%).",
    },
    "forecast.memory": {
        "en": "Memory use will reach its limit in about {days} days at the current rate (confidence {confidence}%).",
        "es": "El uso de memoria llegará a su límite en unos {days} días al ritmo actual (confianza {confidence}%).",
    },
    "forecast.log": {
        "en": "Matching lines in {path} will pass the limit in about {days} days at the current rate (confidence {confidence}%).",
        "es": "Las líneas que coinciden en {path} superarán el límite en unos {days} días al ritmo actual (confianza {confidence}%).",
    },
    "checks.status.ok": {"en": "OK", "es": "BIEN"},
    "checks.status.failing": {"en": "FAILING", "es": "FALLA"},
    "checks.status.error": {"en": "CANNOT TELL", "es": "SIN DATOS"},
    "checks.status.forecast": {"en": "SOON", "es": "PRONTO"},
    "checks.maintenance": {
        "en": "A maintenance window is open: the help desk gets no alerts now.",
        "es": "Hay una ventana de mantenimiento abierta: el servicio de asistencia no recibe alertas ahora.",
    },
    "checks.policy": {
        "en": "Policy number {number} of {organisation}.",
        "es": "Directiva número {number} de {organisation}.",
    },
    "checks.policy_default": {
        "en": "No policy given: the standard checks (system disk, memory, pending restart).",
        "es": "Sin directiva: las comprobaciones estándar (disco del sistema, memoria, reinicio pendiente).",
    },
    "checks.policy_refused": {
        "en": "The device policy {path} was refused and nothing was checked: {reason}",
        "es": "Se rechazó la directiva del equipo {path} y no se comprobó nada: {reason}",
    },
    "checks.policy_needs_key": {
        "en": "A signed policy needs the organisation's public key to check it: add --org-key ORG.pub (or set PUENTE_ORG_KEY).",
        "es": "Una directiva firmada necesita la clave pública de la organización para comprobarla: añada --org-key ORG.pub (o defina PUENTE_ORG_KEY).",
    },
    "checks.unreadable": {
        "en": "Cannot read {path} ({reason}); check the path.",
        "es": "No se puede leer {path} ({reason}); compruebe la ruta.",
    },
    # Enrolment (agent/enrolment.py) -------------------------------------------------------
    "enrol.policy_intro": {
        "en": "Your help desk, {organisation}, asks to look after this computer. Its policy (number {number}) says:",
        "es": "Su servicio de asistencia, {organisation}, pide cuidar de este equipo. Su directiva (número {number}) dice:",
    },
    "enrol.unattended.never": {
        "en": "- Nobody can connect to this computer without you: a technician can never connect when nobody answers.",
        "es": "- Nadie puede conectarse a este equipo sin usted: un técnico nunca puede conectarse si nadie responde.",
    },
    "enrol.unattended.ask-deny": {
        "en": "- When a technician asks to connect, whoever is signed in is asked; no answer within {seconds} seconds means no.",
        "es": "- Cuando un técnico pide conectarse, se pregunta a quien haya iniciado sesión; sin respuesta en {seconds} segundos, la respuesta es no.",
    },
    "enrol.unattended.ask-allow": {
        "en": "- When a technician asks to connect, whoever is signed in is asked; with no answer within {seconds} seconds the technician is let in (a banner shows it, and you can end it).",
        "es": "- Cuando un técnico pide conectarse, se pregunta a quien haya iniciado sesión; sin respuesta en {seconds} segundos el técnico entra (un aviso lo muestra y usted puede terminarlo).",
    },
    "enrol.unattended.allowed": {
        "en": "- Certified technicians of your help desk may, without asking: {capabilities} (a banner shows it, and you can end it).",
        "es": "- Los técnicos certificados de su servicio de asistencia pueden, sin preguntar: {capabilities} (un aviso lo muestra y usted puede terminarlo).",
    },
    "enrol.details.private": {
        "en": "- The help desk learns only which check failed and how badly; what the checks find stays on this computer.",
        "es": "- El servicio de asistencia solo sabe qué comprobación falló y su gravedad; lo que encuentran las comprobaciones se queda en este equipo.",
    },
    "enrol.details.sealed": {
        "en": "- The help desk can read what the checks find (free space, the matching log lines and so on), encrypted so that only it can: the relay in between learns only which check failed and how badly.",
        "es": "- El servicio de asistencia puede leer lo que encuentran las comprobaciones (espacio libre, las líneas de registro que coinciden, etc.), cifrado para que solo él pueda: el servidor intermedio solo sabe qué comprobación falló y su gravedad.",
    },
    "enrol.details.shared": {
        "en": "- The help desk can read what the checks find (free space, the matching log lines and so on), encrypted so that only it can, and may copy it onto its tickets; the relay in between learns only which check failed and how badly.",
        "es": "- El servicio de asistencia puede leer lo que encuentran las comprobaciones (espacio libre, las líneas de registro que coinciden, etc.), cifrado para que solo él pueda, y copiarlo en sus incidencias; el servidor intermedio solo sabe qué comprobación falló y su gravedad.",
    },
    "enrol.checks": {
        "en": "- This computer checks itself: {checks}.",
        "es": "- Este equipo se comprueba a sí mismo: {checks}.",
    },
    "enrol.maintenance": {
        "en": "- Quiet times without alerts (UTC): {windows}.",
        "es": "- Horas tranquilas sin alertas (UTC): {windows}.",
    },
    "enrol.question": {
        "en": "Enrol this computer? Type yes to agree, anything else to stop: ",
        "es": "¿Inscribir este equipo? Escriba sí para aceptar, cualquier otra cosa para parar: ",
    },
    "enrol.declined": {
        "en": "Nothing was installed or sent; this computer is not enrolled.",
        "es": "No se instaló ni se envió nada; este equipo no está inscrito.",
    },
    "enrol.done": {
        "en": "Enrolled as device {device_id}. Its key and state are in {folder}, readable by this account only.",
        "es": "Inscrito como equipo {device_id}. Su clave y su estado están en {folder}, legibles solo por esta cuenta.",
    },
    "enrol.online": {
        "en": "Online: the relay knows this computer is here (a heartbeat every {seconds} s). Press Ctrl+C to stop.",
        "es": "En línea: el relé sabe que este equipo está aquí (una señal cada {seconds} s). Pulse Ctrl+C para parar.",
    },
    "enrol.already": {
        "en": "This computer is already enrolled (device {device_id}); run 'puente-agent unenrol' first to enrol it again.",
        "es": "Este equipo ya está inscrito (equipo {device_id}); ejecute antes 'puente-agent unenrol' para volver a inscribirlo.",
    },
    "actions.bundle_unreadable": {
        "en": "Cannot read the fix {path} ({reason}); check the path. Nothing was installed.",
        "es": "No se puede leer la corrección {path} ({reason}); compruebe la ruta. No se instaló nada.",
    },
    "actions.bundle_refused": {
        "en": "The fix {path} was refused, and nothing was installed: {reason}",
        "es": "Se rechazó la corrección {path}, y no se instaló nada: {reason}",
    },
    "actions.no_copy": {
        "en": "The policy names the fix {fix} as a failure action, but it was not given with --fix; it will be reported as not run until this computer is enrolled again with it.",
        "es": "La directiva nombra la corrección {fix} como acción ante fallos, pero no se dio con --fix; se indicará que no se ejecutó hasta que este equipo se inscriba de nuevo con ella.",
    },
    "update.applied": {
        "en": "Your help desk updated this computer's policy or fixes: {note}",
        "es": "Su servicio de asistencia actualizó la directiva o las correcciones de este equipo: {note}",
    },
    "update.unchanged": {
        "en": "Your help desk sent an update this computer already had; nothing changed.",
        "es": "Su servicio de asistencia envió una actualización que este equipo ya tenía; no cambió nada.",
    },
    "update.refused": {
        "en": "An update from your help desk was refused, and the policy you agreed to stays in force: {note}",
        "es": "Se rechazó una actualización de su servicio de asistencia, y sigue en vigor la directiva que usted aceptó: {note}",
    },
    "update.policy_in_force": {
        "en": "Now running under policy {number}.",
        "es": "Ahora funciona con la directiva {number}.",
    },
    "actions.counts_unreadable": {
        "en": "The kept count of failed checks {path} could not be read ({reason}); counting starts again from zero.",
        "es": "No se pudo leer el recuento guardado de comprobaciones fallidas {path} ({reason}); la cuenta vuelve a empezar desde cero.",
    },
    "enrol.actions.automatic": {
        "en": "- When a check fails, this computer runs by itself, without asking, the fix your help desk signed for it ({fixes}); each run is written in this computer's log and on the help desk's ticket.",
        "es": "- Cuando una comprobación falla, este equipo ejecuta por sí mismo, sin preguntar, la corrección que su servicio de asistencia firmó para ella ({fixes}); cada ejecución queda escrita en el registro de este equipo y en el ticket del servicio de asistencia.",
    },
    "enrol.actions.reported": {
        "en": "- Some checks name a fix ({fixes}), but this policy does not let fixes run by themselves: none runs without someone asking you.",
        "es": "- Algunas comprobaciones nombran una corrección ({fixes}), pero esta directiva no deja que se ejecuten solas: ninguna se ejecuta sin que alguien se lo pregunte.",
    },
    "service.unsupported": {
        "en": "Installing Puente as a service on {system} is not in this build yet; add --no-service to run it in the foreground (under your own supervisor, for example). Nothing was installed.",
        "es": "Instalar Puente como servicio en {system} aún no está en esta versión; añada --no-service para ejecutarlo en primer plano (bajo su propio supervisor, por ejemplo). No se instaló nada.",
    },
    "service.needs_root": {
        "en": "A system-wide service needs root; run enrol with sudo, or choose --service-scope user for a service of your own account. Nothing was installed.",
        "es": "Un servicio para todo el sistema necesita root; ejecute enrol con sudo, o elija --service-scope user para un servicio de su propia cuenta. No se instaló nada.",
    },
    "service.write_failed": {
        "en": "Could not write the service file {path} ({reason}); this computer was not enrolled. Check that folder's permissions and try again.",
        "es": "No se pudo escribir el archivo de servicio {path} ({reason}); este equipo no se inscribió. Compruebe los permisos de esa carpeta y vuelva a intentarlo.",
    },
    "service.start_failed": {
        "en": "systemd could not start the service {name} ({reason}); this computer was not enrolled. See 'journalctl -u {name}' and try again.",
        "es": "systemd no pudo iniciar el servicio {name} ({reason}); este equipo no se inscribió. Consulte 'journalctl -u {name}' y vuelva a intentarlo.",
    },
    "service.unit_written": {
        "en": "Installed the service file {path}.",
        "es": "Se instaló el archivo de servicio {path}.",
    },
    "service.started": {
        "en": "The service {name} is enabled and running; it starts again with the computer. 'puente-agent unenrol' removes it.",
        "es": "El servicio {name} está habilitado y en marcha; vuelve a arrancar con el equipo. 'puente-agent unenrol' lo elimina.",
    },
    "service.linger": {
        "en": "A service of your own account runs while you are signed in; 'loginctl enable-linger' keeps it running after you sign out.",
        "es": "Un servicio de su propia cuenta funciona mientras tenga la sesión iniciada; 'loginctl enable-linger' lo mantiene tras cerrar la sesión.",
    },
    "service.no_systemd": {
        "en": "systemd is not running on this computer (a container?), so the service did not start; it will when systemd runs. Until then, run this under your own supervisor: {command}",
        "es": "systemd no está funcionando en este equipo (¿un contenedor?), así que el servicio no arrancó; lo hará cuando systemd funcione. Mientras tanto, ejecute esto con su propio supervisor: {command}",
    },
    "service.record_unreadable": {
        "en": "The service record in {folder} cannot be read ({reason}); remove the unit named puente-device-... from the systemd folders by hand.",
        "es": "No se puede leer el registro del servicio en {folder} ({reason}); quite a mano la unidad llamada puente-device-... de las carpetas de systemd.",
    },
    "service.stopped": {
        "en": "Stopped and disabled the service {name}.",
        "es": "Se detuvo y deshabilitó el servicio {name}.",
    },
    "service.stop_failed": {
        "en": "systemd could not stop the service {name} ({reason}); its files are removed anyway, and it stops at the next restart.",
        "es": "systemd no pudo detener el servicio {name} ({reason}); sus archivos se eliminan de todos modos, y se detendrá en el próximo reinicio.",
    },
    "service.removed": {
        "en": "Removed: {files}.",
        "es": "Eliminado: {files}.",
    },
    "service.not_enrolled": {
        "en": "This computer is not enrolled ({folder} holds no enrolment); the service has nothing to do and stops.",
        "es": "Este equipo no está inscrito ({folder} no contiene ninguna inscripción); el servicio no tiene nada que hacer y se detiene.",
    },
    "enrol.refused": {
        "en": "The relay refused the enrolment: {reason}",
        "es": "El relé rechazó la inscripción: {reason}",
    },
    "enrol.policy_refused": {
        "en": "The policy that came with this token was refused, and nothing was installed: {reason}",
        "es": "Se rechazó la directiva que venía con este código, y no se instaló nada: {reason}",
    },
    "enrol.unreachable": {
        "en": "Could not reach the relay at {relay} ({reason}); check the address and your network connection, then try again.",
        "es": "No se pudo contactar con el relé en {relay} ({reason}); compruebe la dirección y su conexión de red, y vuelva a intentarlo.",
    },
    "enrol.clock_ahead": {
        "en": "This computer's clock is about {minutes} minutes ahead of the relay's; turn on automatic date and time, then enrol again. Nothing was installed.",
        "es": "El reloj de este equipo va unos {minutes} minutos adelantado respecto al del relé; active la fecha y hora automáticas y vuelva a inscribirlo. No se instaló nada.",
    },
    "enrol.clock_behind": {
        "en": "This computer's clock is about {minutes} minutes behind the relay's; turn on automatic date and time, then enrol again. Nothing was installed.",
        "es": "El reloj de este equipo va unos {minutes} minutos atrasado respecto al del relé; active la fecha y hora automáticas y vuelva a inscribirlo. No se instaló nada.",
    },
    "enrol.reconnecting": {
        "en": "The connection to the relay was lost ({reason}); trying again in {seconds} s.",
        "es": "Se perdió la conexión con el relé ({reason}); se reintentará en {seconds} s.",
    },
    "enrol.device_refused": {
        "en": "The relay refused this device: {reason}",
        "es": "El relé rechazó este equipo: {reason}",
    },
    "unenrol.done": {
        "en": "Unenrolled: removed {folder}, and the relay forgot device {device_id}.",
        "es": "Baja completada: se eliminó {folder} y el relé olvidó el equipo {device_id}.",
    },
    "unenrol.local_only": {
        "en": "Unenrolled on this computer: removed {folder}. The relay could not be told ({reason}); ask your help desk to remove device {device_id} from its list.",
        "es": "Baja completada en este equipo: se eliminó {folder}. No se pudo avisar al relé ({reason}); pida a su servicio de asistencia que quite el equipo {device_id} de su lista.",
    },
    "unenrol.nothing": {
        "en": "This computer is not enrolled ({folder} holds no enrolment); nothing was removed.",
        "es": "Este equipo no está inscrito ({folder} no contiene ninguna inscripción); no se eliminó nada.",
    },
    "kind.disk_free": {"en": "disk space", "es": "espacio en disco"},
    "kind.memory_pressure": {"en": "memory", "es": "memoria"},
    "kind.process_running": {
        "en": "programs that should run",
        "es": "programas que deben funcionar",
    },
    "kind.service_running": {
        "en": "services that should run",
        "es": "servicios que deben funcionar",
    },
    "kind.pending_reboot": {"en": "pending restarts", "es": "reinicios pendientes"},
    "kind.clock_drift": {"en": "the clock", "es": "el reloj"},
    "kind.certificate_expiry": {
        "en": "certificate expiry dates",
        "es": "caducidad de certificados",
    },
    "kind.log_pattern": {"en": "error lines in logs", "es": "líneas de error en registros"},
    "kind.backup_age": {
        "en": "the age of backups",
        "es": "la antigüedad de las copias de seguridad",
    },
    # Satisfaction rating -------------------------------------------------------------------
    "rating.before_you_go": {"en": "Before you go:", "es": "Antes de irse:"},
    "rating.question": {
        "en": "How would you rate this help, 1 to 5? (5 is best; press Enter to skip)",
        "es": "¿Cómo valora esta ayuda, de 1 a 5? (5 es la mejor; pulse Intro para omitir)",
    },
    "rating.invalid": {
        "en": "Please type a number from 1 to 5, or just press Enter to skip.",
        "es": "Escriba un número del 1 al 5, o pulse Intro para omitir.",
    },
    "rating.none": {
        "en": "No rating given; that is fine.",
        "es": "Sin valoración; no pasa nada.",
    },
    "rating.comment": {
        "en": "Any comment for the help desk? Type one line, or press Enter to skip:",
        "es": "¿Algún comentario para el servicio de asistencia? Escriba una línea, o pulse Intro para omitir:",
    },
    "rating.thanks": {"en": "Thank you for your rating.", "es": "Gracias por su valoración."},
    "app.help_code": {
        "en": "Give the session code without putting it on the command line, where other users of this computer can see it: type it when asked (--console reads it from standard input), set PUENTE_CODE, or use the program named after the code (puente-agent-417862093).",
        "es": "Indique el código de sesión sin ponerlo en la línea de órdenes, donde otros usuarios de este equipo pueden verlo: escríbalo cuando se le pida (--console lo lee de la entrada estándar), use la variable PUENTE_CODE o el programa con el código en su nombre (puente-agent-417862093).",
    },
    "app.code_visible": {
        "en": "Advice: a session code on the command line is visible to other users of this computer; next time type it when asked or set PUENTE_CODE.",
        "es": "Consejo: un código de sesión en la línea de órdenes es visible para otros usuarios de este equipo; la próxima vez escríbalo cuando se le pida o use PUENTE_CODE.",
    },
}


def match_template(template: str, text: str) -> dict[str, str] | None:
    """The placeholder values if ``text`` is ``template`` filled in, else None."""
    parts = re.split(r"\{([a-z_]+)\}", template)
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
        for index, part in enumerate(parts)
    )
    found = re.fullmatch(pattern, text, re.DOTALL)
    return found.groupdict() if found else None


def placeholders(text: str) -> set[str]:
    """The ``{names}`` a catalog text expects."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _language_of(value: str) -> str | None:
    """``es_ES.UTF-8`` -> ``es``; C/POSIX/empty -> None (meaning: keep looking)."""
    value = value.strip()
    if not value or value in ("C", "POSIX") or value.startswith("C."):
        return None
    return value.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower() or None


def detect_language(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str:
    """The customer's language: one of :data:`LANGUAGES` (rule 2 of the module doc)."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    found: str | None = None
    forced = env.get("PUENTE_LANG", "")
    if forced:
        found = _language_of(forced)
    if found is None:
        for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
            value = env.get(name, "")
            # LANGUAGE is a colon-separated preference list.
            candidates = value.split(":") if name == "LANGUAGE" else [value]
            for candidate in candidates:
                found = _language_of(candidate)
                if found is not None:
                    break
            if found is not None:
                break
    if found is None and environ is None:
        found = _system_language(platform)
    return found if found in LANGUAGES else DEFAULT_LANGUAGE


def _system_language(platform: str) -> str | None:
    """The desktop's language where no POSIX variable says it (Windows, macOS apps)."""
    try:
        if platform == "win32":
            import ctypes
            import locale

            lang_id = ctypes.windll.kernel32.GetUserDefaultUILanguage()  # type: ignore[attr-defined]
            return _language_of(locale.windows_locale.get(lang_id, ""))
        if platform == "darwin":
            out = subprocess.run(
                ["defaults", "read", "-g", "AppleLanguages"],
                capture_output=True,
                text=True,
                timeout=2,
            ).stdout
            first = out.replace("(", " ").replace('"', " ").replace(",", " ").split()
            return _language_of(first[0]) if first else None
    except (OSError, ValueError, AttributeError, subprocess.SubprocessError):
        return None
    return None


class Translator:
    """Texts of one language; call it with a key and the placeholders' values."""

    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}; use one of {LANGUAGES}")
        self.language = language

    def __call__(self, key: str, **values: object) -> str:
        entry = CATALOG[key]  # a missing key is a bug: fail loudly in tests
        return entry[self.language].format(**values)

    def capability_title(self, capability: ConsentSubject) -> str:
        """The capability's title in this language; a per-run title (a fix's own words,
        already translated by the capability) is shown as it is."""
        return self._capability_text(capability.name, "title", capability.title)

    def capability_description(self, capability: ConsentSubject) -> str:
        return self._capability_text(capability.name, "description", capability.description)

    def capability_choice(self, capability: ConsentSubject, question: str) -> str:
        """A capability's follow-up question (files: which folder) in this language."""
        return self._capability_text(capability.name, "choice", question)

    def _capability_text(self, name: str, field: str, text: str) -> str:
        entry = CATALOG.get(f"cap.{name}.{field}")
        values = None if entry is None else match_template(entry[DEFAULT_LANGUAGE], text)
        if entry is None or values is None:
            return text
        return entry[self.language].format(**values)


_current = Translator(detect_language())


def t(key: str, **values: object) -> str:
    """The text for ``key`` in the customer's language."""
    return _current(key, **values)


def english(key: str, **values: object) -> str:
    """The text for ``key`` in English: for the log and the technician, who read English."""
    return CATALOG[key][DEFAULT_LANGUAGE].format(**values)


def translated(text: str) -> str:
    """``text`` in the customer's language if it is a catalog sentence in English (a
    fixed message some module wrote in English, such as why the screen cannot be
    shared); anything else unchanged."""
    for entry in CATALOG.values():
        if entry[DEFAULT_LANGUAGE] == text and not placeholders(text):
            return entry[_current.language]
    return text


def current() -> Translator:
    return _current


def set_language(language: str) -> None:
    """Switch the language (``--lang``, tests)."""
    global _current
    _current = Translator(language)


def section_labels() -> dict[str, str]:
    """Customer words for the top-level keys of a diagnostics result."""
    prefix = "review.section."
    return {key[len(prefix) :]: t(key) for key in CATALOG if key.startswith(prefix)}


def customer_error(error: BaseException, relay: str = "", grace: float = 60.0) -> str:
    """A sentence in the customer's language for why the session could not go on."""
    from link.connection import RelayRefused, RelayUnavailable, SessionLost
    from protocol.errors import (
        HandshakeAltered,
        IntegrityError,
        TechnicianRefused,
        VersionMismatch,
        WrongCodeError,
    )
    from protocol.resume import ResumeRefused

    cause = error.__cause__
    from protocol.errors import TrustError

    if isinstance(cause, TrustError):
        return str(error)  # AgentSession already put it in the customer's words
    if isinstance(cause, TechnicianRefused):
        # The sentence names the certificate's (outside) name and organisation.
        from protocol.safe_text import safe_text

        return t("error.code_less_refused", detail=safe_text(str(cause), 600))
    for kind, key in (
        (WrongCodeError, "error.wrong_code"),
        (ResumeRefused, "error.resume_refused"),
        (IntegrityError, "error.integrity"),
        (HandshakeAltered, "error.handshake_altered"),
        (VersionMismatch, "error.version"),
    ):
        if isinstance(error, kind) or isinstance(cause, kind):
            return t(key)
    if isinstance(error, RelayRefused):
        key = f"error.relay.{error.code}"
        return t(key) if key in CATALOG else str(error)
    if isinstance(error, RelayUnavailable):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return t("error.untrusted_certificate", relay=relay, detail=cause.verify_message)
        return t("error.unavailable", relay=relay)
    if isinstance(error, SessionLost):
        if error.kind == "resume_timeout":
            return t("ended.resume_timeout", grace=f"{grace:g}")
        if error.kind in ("peer_timeout", "peer_gone"):
            return t(f"ended.{error.kind}")
        code = getattr(error, "code", "")
        if error.kind == "relay" and f"error.relay.{code}" in CATALOG:
            return t(f"error.relay.{code}")
        return t("ended.lost")
    if isinstance(error, TimeoutError):
        return t("ended.no_answer")
    return t("ended.lost")
