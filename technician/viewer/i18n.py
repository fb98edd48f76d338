"""Every sentence the viewer shows, in English and Spanish.

The same small-catalog shape as the customer's side (``agent/i18n.py``; the programs
never import each other, so the technician has its own): :func:`tr` looks a key up in
the current language and fills its ``{placeholders}``.

Rules:

1. Every key has a non-empty text in both languages with the same placeholders (a
   test walks the catalog).
2. The language comes from ``PUENTE_LANG``, then ``LANGUAGE``, ``LC_ALL``,
   ``LC_MESSAGES``, ``LANG``; anything that is not Spanish is English.
3. Text from the customer's machine or the relay is never a key: it is filled into a
   placeholder after :func:`protocol.safe_text.safe_text` and shown as plain text.
"""

from __future__ import annotations

import os
import re
import string

LANGUAGES = ("en", "es")

CATALOG: dict[str, dict[str, str]] = {
    "window.title": {"en": "Puente viewer", "es": "Visor de Puente"},
    # Sign in ------------------------------------------------------------------------------
    "signin.relay": {"en": "wss://relay.example.org", "es": "wss://relay.ejemplo.org"},
    "signin.token": {"en": "API token", "es": "Token de la API"},
    "signin.button": {"en": "&Sign in", "es": "&Iniciar sesión"},
    "signin.forget": {"en": "Sign &out", "es": "&Cerrar sesión"},
    "signin.prompt": {
        "en": "Sign in with the relay address and your API token; they are kept in this computer's credential store.",
        "es": "Inicie sesión con la dirección del relé y su token de la API; se guardan en el almacén de credenciales de este equipo.",
    },
    "signin.missing": {
        "en": "Fill in the relay address (wss://...) and your API token, then sign in.",
        "es": "Escriba la dirección del relé (wss://...) y su token de la API y luego inicie sesión.",
    },
    "signin.checking": {"en": "Checking with the relay...", "es": "Comprobando con el relé..."},
    "signin.done": {
        "en": "Signed in to {relay}; the token is kept in the credential store.",
        "es": "Sesión iniciada en {relay}; el token se guarda en el almacén de credenciales.",
    },
    "signin.remembered": {
        "en": "Signed in from the credential store ({relay}).",
        "es": "Sesión iniciada desde el almacén de credenciales ({relay}).",
    },
    "signin.wrong_token": {
        "en": "The relay did not accept this API token. Check it (ask your administrator for a new one if needed) and sign in again.",
        "es": "El relé no aceptó este token de la API. Compruébelo (pida uno nuevo a su administrador si hace falta) y vuelva a iniciar sesión.",
    },
    "signin.unreachable": {
        "en": "Could not reach the relay at {relay}. Check the address and your network, then sign in again.",
        "es": "No se pudo contactar con el relé en {relay}. Compruebe la dirección y su red y vuelva a iniciar sesión.",
    },
    "signin.no_store": {
        "en": "This computer has no credential store the viewer can use ({problem}); you are signed in until you close the viewer.",
        "es": "Este equipo no tiene un almacén de credenciales que el visor pueda usar ({problem}); la sesión dura hasta que cierre el visor.",
    },
    "signin.identity_kept": {
        "en": "Signed in to {relay} as {name} of {organisation}; the token, certificate and key are kept in the credential store.",
        "es": "Sesión iniciada en {relay} como {name} de {organisation}; el token, el certificado y la clave se guardan en el almacén de credenciales.",
    },
    "signin.identity_remembered": {
        "en": "Signed in from the credential store ({relay}) as {name} of {organisation}.",
        "es": "Sesión iniciada desde el almacén de credenciales ({relay}) como {name} de {organisation}.",
    },
    "signin.identity_unusable": {
        "en": "The certificate kept in the credential store cannot be used ({problem}); start the viewer with --cert and --key to replace it.",
        "es": "El certificado guardado en el almacén de credenciales no se puede usar ({problem}); inicie el visor con --cert y --key para sustituirlo.",
    },
    "signin.signed_out": {
        "en": "Signed out; the token was removed from the credential store.",
        "es": "Sesión cerrada; el token se quitó del almacén de credenciales.",
    },
    # My sessions --------------------------------------------------------------------------
    "sessions.title": {"en": "My sessions", "es": "Mis sesiones"},
    "sessions.refresh": {"en": "&Refresh", "es": "&Actualizar"},
    "sessions.ticket": {"en": "ticket, e.g. HD-1042", "es": "incidencia, p. ej. HD-1042"},
    "sessions.start": {"en": "S&tart session", "es": "Em&pezar sesión"},
    "sessions.need_signin": {"en": "Sign in first.", "es": "Inicie sesión primero."},
    "sessions.need_ticket": {
        "en": "Type the ticket this session is for (for example HD-1042), then start.",
        "es": "Escriba la incidencia de esta sesión (por ejemplo HD-1042) y luego empiece.",
    },
    "sessions.row": {"en": "{ticket} · {state} · {when}", "es": "{ticket} · {state} · {when}"},
    "sessions.count.one": {"en": "1 session.", "es": "1 sesión."},
    "sessions.count.many": {"en": "{count} sessions.", "es": "{count} sesiones."},
    "sessions.state.waiting": {"en": "waiting", "es": "en espera"},
    "sessions.state.paired": {"en": "connected", "es": "conectada"},
    "sessions.state.ended": {"en": "ended", "es": "terminada"},
    "sessions.state.expired": {"en": "expired", "es": "caducada"},
    "sessions.state.failed": {"en": "failed", "es": "fallida"},
    "sessions.open_here": {
        "en": "This session is already open in its tab.",
        "es": "Esta sesión ya está abierta en su pestaña.",
    },
    "sessions.cannot_open": {
        "en": "The session for {ticket} is {state}: it cannot be opened again. Start a new session for the ticket (its summary stays on the ticket).",
        "es": "La sesión de {ticket} está {state}: no se puede volver a abrir. Empiece una sesión nueva para la incidencia (su resumen sigue en la incidencia).",
    },
    "sessions.elsewhere": {
        "en": "The session for {ticket} was opened in another window or program (its code lives there only): continue it there, or end it and start a new one.",
        "es": "La sesión de {ticket} se abrió en otra ventana u otro programa (su código solo está allí): continúela allí, o termínela y empiece una nueva.",
    },
    "sessions.choose": {
        "en": "Double-click a session to go to its tab.",
        "es": "Haga doble clic en una sesión para ir a su pestaña.",
    },
    "side.sessions": {"en": "&Sessions", "es": "&Sesiones"},
    "side.queue": {"en": "&Queue", "es": "&Cola"},
    "side.devices": {"en": "&Devices", "es": "&Dispositivos"},
    # The queue ------------------------------------------------------------------------
    "queue.title": {"en": "Help requests waiting", "es": "Solicitudes de ayuda en espera"},
    "queue.availability": {"en": "You are:", "es": "Usted está:"},
    "queue.available": {"en": "available", "es": "disponible"},
    "queue.busy": {"en": "busy", "es": "ocupado"},
    "queue.away": {"en": "away", "es": "ausente"},
    "queue.me": {
        "en": "You: {availability}, skills {skills}, holding {holding} of {capacity}.",
        "es": "Usted: {availability}, habilidades {skills}, atiende {holding} de {capacity}.",
    },
    "queue.accept": {"en": "&Accept", "es": "&Aceptar"},
    "queue.decline": {"en": "D&ecline", "es": "&Rechazar"},
    "queue.row": {
        "en": "#{position} · {category}/{language} · waiting {waited} · {estimate}\n{description}",
        "es": "#{position} · {category}/{language} · espera {waited} · {estimate}\n{description}",
    },
    "queue.row_offered": {"en": "offered to you", "es": "ofrecida a usted"},
    "queue.row_offered_to": {"en": "offered to {name}", "es": "ofrecida a {name}"},
    "queue.estimate": {"en": "estimate {wait}", "es": "estimación {wait}"},
    "queue.no_estimate": {"en": "no estimate", "es": "sin estimación"},
    "queue.now": {"en": "any moment now", "es": "en cualquier momento"},
    "queue.minutes": {"en": "{minutes} min", "es": "{minutes} min"},
    "queue.seconds": {"en": "{seconds} s", "es": "{seconds} s"},
    "queue.note": {"en": "note: {note}", "es": "nota: {note}"},
    "queue.count.one": {
        "en": "1 help request is waiting.",
        "es": "1 solicitud de ayuda en espera.",
    },
    "queue.count.many": {
        "en": "{count} help requests are waiting.",
        "es": "{count} solicitudes de ayuda en espera.",
    },
    "queue.empty": {
        "en": "No help requests are waiting.",
        "es": "No hay solicitudes de ayuda en espera.",
    },
    "queue.choose": {
        "en": "Choose a help request in the list first.",
        "es": "Elija primero una solicitud de ayuda de la lista.",
    },
    "queue.declined": {
        "en": "Declined; it goes to the next technician.",
        "es": "Rechazada; pasa al siguiente técnico.",
    },
    "queue.availability_set": {
        "en": "You are {availability} now.",
        "es": "Ahora está {availability}.",
    },
    "queue.accepted_waiting": {
        "en": "Accepted. The customer's agent joins by itself (no code to read); waiting for it...",
        "es": "Aceptada. El agente del cliente se une solo (no hay código que leer); esperándolo...",
    },
    "queue.agent_late": {
        "en": "The customer's agent did not join within 2 minutes; the request is yours, look at the queue again.",
        "es": "El agente del cliente no se unió en 2 minutos; la solicitud es suya, mire la cola de nuevo.",
    },
    "queue.need_certificate": {
        "en": "Sessions without a code need your organisation certificate: start the viewer once with --cert and --key (it is kept in the credential store).",
        "es": "Las sesiones sin código necesitan el certificado de su organización: inicie el visor una vez con --cert y --key (se guarda en el almacén de credenciales).",
    },
    "transfer.to": {
        "en": "technician, skill or team queue",
        "es": "técnico, habilidad o cola del equipo",
    },
    "transfer.note": {
        "en": "note for the next technician",
        "es": "nota para el siguiente técnico",
    },
    "transfer.button": {"en": "Trans&fer", "es": "Trans&ferir"},
    "transfer.need": {
        "en": "Name the technician or queue and write a note for them, then transfer.",
        "es": "Indique el técnico o la cola y escriba una nota para ellos; luego transfiera.",
    },
    "transfer.done": {
        "en": "Transferred to {to}; the customer waits for them with your note.",
        "es": "Transferida a {to}; el cliente le espera con su nota.",
    },
    "transfer.refused": {
        "en": "Not transferred (the session goes on): {reason}",
        "es": "No se transfirió (la sesión continúa): {reason}",
    },
    "queue.tab": {"en": "request {request}", "es": "solicitud {request}"},
    # Devices --------------------------------------------------------------------------
    "devices.title": {"en": "Enrolled devices", "es": "Dispositivos inscritos"},
    "devices.online": {"en": "online", "es": "conectado"},
    "devices.offline": {"en": "offline", "es": "desconectado"},
    "devices.row": {
        "en": "{device} · {state} · {alerts}",
        "es": "{device} · {state} · {alerts}",
    },
    "devices.no_alerts": {"en": "no open alerts", "es": "sin alertas abiertas"},
    "devices.alerts.one": {"en": "1 open alert", "es": "1 alerta abierta"},
    "devices.alerts.many": {"en": "{count} open alerts", "es": "{count} alertas abiertas"},
    "devices.alert": {
        "en": "  ⚠ {check} · {severity} · since {since} · {ticket}",
        "es": "  ⚠ {check} · {severity} · desde {since} · {ticket}",
    },
    "devices.severity.info": {"en": "info", "es": "informativa"},
    "devices.severity.warning": {"en": "warning", "es": "aviso"},
    "devices.severity.critical": {"en": "critical", "es": "crítica"},
    "devices.ticket": {"en": "ticket {ticket}", "es": "incidencia {ticket}"},
    "devices.no_ticket": {"en": "no ticket yet", "es": "aún sin incidencia"},
    "devices.count.one": {"en": "1 device enrolled.", "es": "1 dispositivo inscrito."},
    "devices.count.many": {
        "en": "{count} devices enrolled.",
        "es": "{count} dispositivos inscritos.",
    },
    "devices.none": {
        "en": "No devices are enrolled at this relay.",
        "es": "No hay dispositivos inscritos en este relé.",
    },
    "devices.ticket_field": {
        "en": "ticket for the session, e.g. HD-1042",
        "es": "incidencia de la sesión, p. ej. HD-1042",
    },
    "devices.connect": {"en": "C&onnect", "es": "C&onectar"},
    "devices.choose": {
        "en": "Choose a device in the list first.",
        "es": "Elija primero un dispositivo de la lista.",
    },
    "devices.need_ticket": {
        "en": "Type the ticket this unattended session is for (for example HD-1042), then connect.",
        "es": "Escriba la incidencia de esta sesión desatendida (por ejemplo HD-1042) y luego conecte.",
    },
    "devices.offline_now": {
        "en": "This device is offline; it can be reached once it is online again.",
        "es": "Este dispositivo está desconectado; se podrá usar cuando vuelva a conectarse.",
    },
    "devices.asked": {
        "en": "The device was asked (its policy: {mode}); waiting for it to pair...",
        "es": "Se preguntó al dispositivo (su política: {mode}); esperando a que se empareje...",
    },
    "devices.mode.never": {"en": "never", "es": "nunca"},
    "devices.mode.ask-deny": {
        "en": "ask whoever is signed in; no answer means no",
        "es": "preguntar a quien esté conectado; sin respuesta es no",
    },
    "devices.mode.ask-allow": {
        "en": "ask whoever is signed in; no answer lets you in after a countdown",
        "es": "preguntar a quien esté conectado; sin respuesta entra tras una cuenta atrás",
    },
    "devices.mode.allowed": {"en": "allowed without asking", "es": "permitido sin preguntar"},
    "devices.no_pairing": {
        "en": "The device did not pair within a minute; is it still online?",
        "es": "El dispositivo no se emparejó en un minuto; ¿sigue conectado?",
    },
    "tab.refused": {
        "en": "The other side refused the session: {reason}",
        "es": "El otro lado rechazó la sesión: {reason}",
    },
    "devices.tab": {"en": "{ticket} (unattended)", "es": "{ticket} (desatendida)"},
    # What the relay and the link say, in the technician's language ----------------------
    "relay.taken": {
        "en": "Another technician took this request a moment ago; choose another one.",
        "es": "Otro técnico tomó esta solicitud hace un momento; elija otra.",
    },
    "relay.offered_elsewhere": {
        "en": "This request is offered to another technician right now; take another one, or wait for it to come back.",
        "es": "Esta solicitud se está ofreciendo a otro técnico ahora mismo; tome otra o espere a que vuelva.",
    },
    "relay.closed": {
        "en": "This request is closed (the customer no longer waits); choose another one.",
        "es": "Esta solicitud está cerrada (el cliente ya no espera); elija otra.",
    },
    "relay.not_found": {
        "en": "The relay does not know it (any more); refresh the list.",
        "es": "El relé no lo conoce (ya); actualice la lista.",
    },
    "relay.no_profile": {
        "en": "You take no help requests yet; ask the relay's operator to give you skills ('puente-relay technician add').",
        "es": "Aún no atiende solicitudes de ayuda; pida al operador del relé que le asigne habilidades ('puente-relay technician add').",
    },
    "relay.token": {
        "en": "The relay did not accept your API token; sign in again.",
        "es": "El relé no aceptó su token de la API; vuelva a iniciar sesión.",
    },
    "relay.device_offline": {
        "en": "The device is not online now; try again once it is.",
        "es": "El dispositivo no está conectado ahora; inténtelo de nuevo cuando lo esté.",
    },
    "relay.other": {
        "en": "The relay refused: {message}",
        "es": "El relé lo rechazó: {message}",
    },
    "result.stopped": {
        "en": "the customer stopped {capability}",
        "es": "el cliente detuvo {capability}",
    },
    "result.declined": {
        "en": "the customer declined {capability}",
        "es": "el cliente rechazó {capability}",
    },
    "result.cannot": {
        "en": "the customer's agent cannot do {capability}; update it",
        "es": "el agente del cliente no puede hacer {capability}; actualícelo",
    },
    "result.failed": {
        "en": "{capability} failed on the customer's computer",
        "es": "{capability} falló en el equipo del cliente",
    },
    "result.refused_before": {
        "en": "refused before anything ran: {reason}",
        "es": "rechazado antes de ejecutar nada: {reason}",
    },
    "result.no_such_file": {
        "en": "{what}: no such file on the customer's computer",
        "es": "{what}: no existe ese archivo en el equipo del cliente",
    },
    "result.is_folder": {
        "en": "{what} is a folder; files are copied one at a time",
        "es": "{what} es una carpeta; los archivos se copian de uno en uno",
    },
    "result.not_a_file": {
        "en": "{what} is not a file here; choose a file to send",
        "es": "{what} no es un archivo aquí; elija un archivo para enviar",
    },
    "link.unreachable": {
        "en": "The relay could not be reached; check your network and that the relay is running, then try again.",
        "es": "No se pudo contactar con el relé; compruebe su red y que el relé esté en marcha, y vuelva a intentarlo.",
    },
    "link.lost": {
        "en": "The session ended unexpectedly: {reason}",
        "es": "La sesión terminó inesperadamente: {reason}",
    },
    # A session tab ------------------------------------------------------------------------
    "tab.waiting": {"en": "{ticket} (waiting)", "es": "{ticket} (esperando)"},
    "tab.code": {"en": "code: {code}", "es": "código: {code}"},
    "tab.no_code": {"en": "code: -", "es": "código: -"},
    "tab.code_less": {
        "en": "no code: paired with your certificate",
        "es": "sin código: emparejado con su certificado",
    },
    "tab.sas": {"en": "check code: {sas}", "es": "código de comprobación: {sas}"},
    "tab.no_sas": {"en": "check code: -", "es": "código de comprobación: -"},
    "tab.copy_code": {"en": "Copy &code", "es": "Copiar &código"},
    "tab.copy_link": {"en": "Copy &join link", "es": "Copiar en&lace"},
    "tab.copied": {"en": "Copied to your clipboard.", "es": "Copiado a su portapapeles."},
    "tab.no_link": {"en": "join link: -", "es": "enlace: -"},
    "tab.link": {"en": "join link: {url}", "es": "enlace: {url}"},
    "tab.allowed": {"en": "allowed: {names}", "es": "permitido: {names}"},
    "tab.allowed_none": {"en": "allowed: nothing", "es": "permitido: nada"},
    "tab.view": {"en": "Ask for &view", "es": "Pedir &ver"},
    "tab.control": {"en": "Ask for c&ontrol", "es": "Pedir c&ontrol"},
    "tab.fit": {"en": "1:1", "es": "1:1"},
    "tab.fit_back": {"en": "Fit", "es": "Ajustar"},
    "tab.end": {"en": "&End session", "es": "&Terminar sesión"},
    "tab.screen_here": {
        "en": "The customer's screen appears here.",
        "es": "La pantalla del cliente aparece aquí.",
    },
    "tab.figures": {
        "en": "{fps:.0f} fps  {kbps:.0f} kb/s  round trip {rtt} ms",
        "es": "{fps:.0f} fps  {kbps:.0f} kb/s  ida y vuelta {rtt} ms",
    },
    "tab.link_lost": {
        "en": "The network dropped; reconnecting to the same session (nothing is lost)...",
        "es": "Se cortó la red; reconectando con la misma sesión (no se pierde nada)...",
    },
    "tab.peer_lost": {
        "en": "The customer's connection dropped; waiting for it to come back (up to a minute)...",
        "es": "Se cortó la conexión del cliente; esperando a que vuelva (hasta un minuto)...",
    },
    "tab.resumed": {
        "en": "The connection is back; the session goes on.",
        "es": "La conexión ha vuelto; la sesión continúa.",
    },
    "tab.ended": {"en": "Session ended: {reason}", "es": "Sesión terminada: {reason}"},
    "tab.close_first": {
        "en": "End the session before closing its tab.",
        "es": "Termine la sesión antes de cerrar su pestaña.",
    },
    # The session's own notices -------------------------------------------------------
    "notice.went_wrong": {
        "en": "Something went wrong: {problem}",
        "es": "Algo salió mal: {problem}",
    },
    "notice.already_open": {
        "en": "A session is already open in this tab; end it first.",
        "es": "Ya hay una sesión abierta en esta pestaña; termínela primero.",
    },
    "notice.fill_in": {
        "en": "Fill in the relay address, your API token and the ticket.",
        "es": "Escriba la dirección del relé, su token de la API y la incidencia.",
    },
    "notice.read_code": {
        "en": "Read the code to the customer (or send the join link); waiting for them to join...",
        "es": "Lea el código al cliente (o envíele el enlace); esperando a que se una...",
    },
    "notice.summary_sent": {
        "en": "The session summary was sent to the relay for the ticket.",
        "es": "El resumen de la sesión se envió al relé para la incidencia.",
    },
    "notice.asking_view": {
        "en": "Asking the customer to allow screen view...",
        "es": "Pidiendo al cliente que permita ver la pantalla...",
    },
    "notice.view_not_started": {
        "en": "Screen view not started: {reason}",
        "es": "No se inició la vista de pantalla: {reason}",
    },
    "notice.view_on": {
        "en": "Screen view is on.",
        "es": "La vista de pantalla está activa.",
    },
    "notice.view_stopped": {
        "en": "The customer stopped screen view.",
        "es": "El cliente detuvo la vista de pantalla.",
    },
    "notice.view_ended": {
        "en": "Screen view ended: {reason}",
        "es": "La vista de pantalla terminó: {reason}",
    },
    "notice.view_error": {
        "en": "Stopped showing the screen: {reason}",
        "es": "Se dejó de mostrar la pantalla: {reason}",
    },
    "notice.view_first": {
        "en": "Ask for screen view first: control needs it.",
        "es": "Pida primero ver la pantalla: el control lo necesita.",
    },
    "notice.asking_control": {
        "en": "Asking the customer to allow remote control...",
        "es": "Pidiendo al cliente que permita el control remoto...",
    },
    "notice.control_declined": {
        "en": "Remote control declined: {reason}",
        "es": "Control remoto rechazado: {reason}",
    },
    "notice.control_taken_back": {
        "en": "The customer took back control.",
        "es": "El cliente recuperó el control.",
    },
    "notice.control_ended": {
        "en": "Remote control ended: {reason}",
        "es": "El control remoto terminó: {reason}",
    },
    "notice.no_customer": {
        "en": "No customer is connected yet.",
        "es": "Todavía no hay ningún cliente conectado.",
    },
    "notice.ending": {
        "en": "Ending the session; the customer is asked to rate the help...",
        "es": "Terminando la sesión; se pide al cliente que valore la ayuda...",
    },
    "notice.joined": {
        "en": "Customer joined. Ask them to read their check code; if it differs, end now.",
        "es": "El cliente se ha unido. Pídale que lea su código de comprobación; si no coincide, termine ya.",
    },
    # Panels -------------------------------------------------------------------------------
    "panel.consents": {"en": "Consents", "es": "Permisos"},
    "panel.chat": {"en": "Chat", "es": "Chat"},
    "panel.ending": {"en": "Ending", "es": "Final"},
    "consents.none": {
        "en": "The customer has allowed nothing yet.",
        "es": "El cliente aún no ha permitido nada.",
    },
    "consents.row": {"en": "{title}: {state}", "es": "{title}: {state}"},
    "consents.granted": {"en": "allowed", "es": "permitido"},
    "consents.declined": {"en": "declined", "es": "rechazado"},
    "consents.revoked": {"en": "stopped by the customer", "es": "retirado por el cliente"},
    "consents.allowed_now": {
        "en": "The customer allowed {title}.",
        "es": "El cliente permitió {title}.",
    },
    "consents.declined_now": {
        "en": "The customer declined {title}.",
        "es": "El cliente rechazó {title}.",
    },
    "consents.revoked_now": {
        "en": "The customer stopped {title}.",
        "es": "El cliente retiró {title}.",
    },
    "consents.not_now": {
        "en": "The customer {state}: {title}.",
        "es": "El cliente {state}: {title}.",
    },
    "chat.placeholder": {
        "en": "Message to the customer (Enter sends)",
        "es": "Mensaje para el cliente (Intro lo envía)",
    },
    "chat.send": {"en": "Se&nd", "es": "En&viar"},
    "chat.me": {"en": "You: {text}", "es": "Usted: {text}"},
    "chat.customer": {"en": "Customer: {text}", "es": "Cliente: {text}"},
    "chat.not_sent": {
        "en": "Not sent: no customer is connected.",
        "es": "No enviado: no hay ningún cliente conectado.",
    },
    "panel.terminal": {"en": "Terminal", "es": "Terminal"},
    "terminal.title": {"en": "Customer's terminal", "es": "Terminal del cliente"},
    "terminal.open": {"en": "Open &terminal", "es": "Abrir &terminal"},
    "terminal.copy": {"en": "Copy", "es": "Copiar"},
    "terminal.paste": {"en": "Paste", "es": "Pegar"},
    "terminal.closed": {
        "en": "No terminal is open. Open one: the customer is asked first.",
        "es": "No hay ningún terminal abierto. Abra uno: antes se pregunta al cliente.",
    },
    "terminal.asking": {
        "en": "Asking the customer to allow a terminal...",
        "es": "Pidiendo al cliente que permita un terminal...",
    },
    "terminal.open_now": {
        "en": "The terminal is open (drag to select; Ctrl+Shift+C copies the selection or the screen, Ctrl+Shift+V pastes).",
        "es": "El terminal está abierto (arrastre para seleccionar; Ctrl+Mayús+C copia la selección o la pantalla, Ctrl+Mayús+V pega).",
    },
    "terminal.ended": {
        "en": "The terminal ended (exit status {status}).",
        "es": "El terminal terminó (estado de salida {status}).",
    },
    "terminal.refused": {
        "en": "No terminal: {reason}",
        "es": "Sin terminal: {reason}",
    },
    "panel.files": {"en": "Files", "es": "Archivos"},
    "files.drop_here": {
        "en": "Drop files here to send them to the customer's shared folder (the customer is asked first).",
        "es": "Suelte aquí archivos para enviarlos a la carpeta compartida del cliente (antes se le pregunta).",
    },
    "files.download_folder": {"en": "Download to:", "es": "Descargar en:"},
    "files.refresh": {"en": "&List shared folder", "es": "&Listar carpeta compartida"},
    "files.download": {"en": "&Download", "es": "&Descargar"},
    "files.remote": {
        "en": "The customer's shared folder",
        "es": "La carpeta compartida del cliente",
    },
    "files.entry": {"en": "{name}  ({size} bytes)", "es": "{name}  ({size} bytes)"},
    "files.listed.one": {
        "en": "1 file in the customer's shared folder.",
        "es": "1 archivo en la carpeta compartida del cliente.",
    },
    "files.listed.many": {
        "en": "{count} files in the customer's shared folder.",
        "es": "{count} archivos en la carpeta compartida del cliente.",
    },
    "files.choose_first": {
        "en": "Choose a file in the list first (List shared folder fills it).",
        "es": "Elija primero un archivo de la lista (Listar carpeta compartida la llena).",
    },
    "files.no_folder": {
        "en": "The download folder {folder} does not exist; type a folder that exists.",
        "es": "La carpeta de descarga {folder} no existe; escriba una carpeta que exista.",
    },
    "files.not_a_file": {
        "en": "{path} is not a file; drop files (folders are not sent).",
        "es": "{path} no es un archivo; suelte archivos (las carpetas no se envían).",
    },
    "files.uploading": {"en": "Sending {name}", "es": "Enviando {name}"},
    "files.downloading": {"en": "Downloading {name}", "es": "Descargando {name}"},
    "files.cancel": {"en": "Cancel", "es": "Cancelar"},
    "files.verified": {
        "en": "Done; its SHA-256, the same as on the customer's computer:",
        "es": "Hecho; su SHA-256, el mismo que en el equipo del cliente:",
    },
    "files.cancelled_download": {
        "en": "Download cancelled; {part} was kept, so downloading again continues from there.",
        "es": "Descarga cancelada; se conservó {part}, así que al descargar de nuevo continúa desde ahí.",
    },
    "files.cancelled_upload": {
        "en": "Sending cancelled; {part} stays in the customer's folder, so sending again continues from there.",
        "es": "Envío cancelado; {part} queda en la carpeta del cliente, así que al enviar de nuevo continúa desde ahí.",
    },
    "files.part_kept": {
        "en": "The part already copied was kept as {part}; downloading again continues from there.",
        "es": "Lo ya copiado se conservó como {part}; al descargar de nuevo continúa desde ahí.",
    },
    "files.part_remote": {
        "en": "If part of it arrived, it is {part} in the customer's folder (the file itself was not replaced); sending again continues from there.",
        "es": "Si llegó una parte, es {part} en la carpeta del cliente (el archivo no se sustituyó); al enviar de nuevo continúa desde ahí.",
    },
    "files.list_failed": {
        "en": "Could not list the shared folder: {reason}",
        "es": "No se pudo listar la carpeta compartida: {reason}",
    },
    "panel.diagnostics": {"en": "Diagnostics", "es": "Diagnóstico"},
    "diagnostics.collect": {"en": "Collect dia&gnostics", "es": "Recoger dia&gnóstico"},
    "diagnostics.run_fix": {"en": "&Run fix", "es": "Ejecutar a&rreglo"},
    "diagnostics.preview_fix": {"en": "Pre&view fix", "es": "&Vista previa"},
    "diagnostics.none": {
        "en": "Collect diagnostics to see a report and the known problems found in it.",
        "es": "Recoja el diagnóstico para ver un informe y los problemas conocidos encontrados.",
    },
    "diagnostics.findings": {"en": "Problems found", "es": "Problemas encontrados"},
    "diagnostics.report": {"en": "Diagnostics report", "es": "Informe de diagnóstico"},
    "diagnostics.output": {"en": "Fix output", "es": "Salida del arreglo"},
    "diagnostics.asking": {
        "en": "Asking the customer to allow diagnostics...",
        "es": "Pidiendo al cliente que permita el diagnóstico...",
    },
    "diagnostics.finding": {"en": "[{severity}] {title}", "es": "[{severity}] {title}"},
    "diagnostics.evidence": {"en": "evidence: {text}", "es": "indicio: {text}"},
    "diagnostics.advice": {"en": "advice: {text}", "es": "consejo: {text}"},
    "diagnostics.suggested": {"en": "suggested: {command}", "es": "sugerido: {command}"},
    "diagnostics.found.one": {
        "en": "1 known problem found; choose a suggested fix and run it.",
        "es": "1 problema conocido encontrado; elija un arreglo sugerido y ejecútelo.",
    },
    "diagnostics.found.many": {
        "en": "{count} known problems found; choose a suggested fix and run it.",
        "es": "{count} problemas conocidos encontrados; elija un arreglo sugerido y ejecútelo.",
    },
    "diagnostics.nothing": {
        "en": "No known problem found in this snapshot.",
        "es": "No se encontró ningún problema conocido en este diagnóstico.",
    },
    "diagnostics.choose_fix": {
        "en": "Choose a suggested fix in the list first.",
        "es": "Elija primero un arreglo sugerido de la lista.",
    },
    "diagnostics.fix_asking": {
        "en": "Sending {fix}; the customer is asked to allow it...",
        "es": "Enviando {fix}; se pide permiso al cliente...",
    },
    "diagnostics.fix_result": {
        "en": "Fix: {status}: {message}",
        "es": "Arreglo: {status}: {message}",
    },
    "diagnostics.refused": {"en": "No diagnostics: {reason}", "es": "Sin diagnóstico: {reason}"},
    "tools.monitor": {"en": "Monitor:", "es": "Monitor:"},
    "tools.all_monitors": {
        "en": "All monitors ({width}×{height})",
        "es": "Todos los monitores ({width}×{height})",
    },
    "tools.monitor_value": {
        "en": "Monitor {index} ({width}×{height})",
        "es": "Monitor {index} ({width}×{height})",
    },
    "tools.fps": {"en": "Frames:", "es": "Imágenes:"},
    "tools.fps_value": {"en": "{fps} per second", "es": "{fps} por segundo"},
    "tools.quality": {"en": "Quality:", "es": "Calidad:"},
    "tools.quality_value": {"en": "{quality} %", "es": "{quality} %"},
    "tools.auto": {"en": "automatic", "es": "automático"},
    "tools.keys": {"en": "Special &keys", "es": "&Teclas especiales"},
    "tools.keys_help": {
        "en": "Send a key combination your own computer would keep (needs remote control). Windows only opens its secure screen for Ctrl+Alt+Del from a system service, so there the programs get it but the secure screen does not open.",
        "es": "Enviar una combinación de teclas que su propio equipo se quedaría (necesita control remoto). Windows solo abre su pantalla segura para Ctrl+Alt+Supr desde un servicio del sistema, así que allí la reciben los programas pero no se abre la pantalla segura.",
    },
    "tools.keys_need_control": {
        "en": "Special keys need remote control: ask for control first.",
        "es": "Las teclas especiales necesitan control remoto: pida control primero.",
    },
    "tools.keys_sent": {"en": "Sent {keys}.", "es": "Enviado {keys}."},
    "tools.get_clipboard": {"en": "Get their clip&board", "es": "Traer su porta&papeles"},
    "tools.send_clipboard": {"en": "Send my clipboard", "es": "Enviar mi portapapeles"},
    "tools.clipboard_empty": {
        "en": "Your clipboard has no text to send.",
        "es": "Su portapapeles no tiene texto que enviar.",
    },
    "tools.clipboard_sending": {
        "en": "Sending your clipboard (the customer is asked first)...",
        "es": "Enviando su portapapeles (antes se pregunta al cliente)...",
    },
    "tools.clipboard_got.one": {
        "en": "Their clipboard is now on yours (1 character): {preview}",
        "es": "Su portapapeles está ahora en el suyo (1 carácter): {preview}",
    },
    "tools.clipboard_got.many": {
        "en": "Their clipboard is now on yours ({count} characters): {preview}",
        "es": "Su portapapeles está ahora en el suyo ({count} caracteres): {preview}",
    },
    "tools.clipboard_sent.one": {
        "en": "Your clipboard is on theirs (1 character).",
        "es": "Su portapapeles está en el del cliente (1 carácter).",
    },
    "tools.clipboard_sent.many": {
        "en": "Your clipboard is on theirs ({count} characters).",
        "es": "Su portapapeles está en el del cliente ({count} caracteres).",
    },
    "tools.clipboard_refused": {
        "en": "Clipboard not shared: {reason}",
        "es": "Portapapeles no compartido: {reason}",
    },
    "ending.waiting": {
        "en": "When the session ends, the customer's rating and the summary sent to the ticket appear here.",
        "es": "Cuando termine la sesión, aquí aparecen la valoración del cliente y el resumen enviado a la incidencia.",
    },
    "ending.rating": {
        "en": "The customer rated the help {score} of 5. Comment: {comment}",
        "es": "El cliente valoró la ayuda con {score} de 5. Comentario: {comment}",
    },
    "ending.no_rating": {
        "en": "The customer did not rate the help.",
        "es": "El cliente no valoró la ayuda.",
    },
    "ending.summary_sent": {
        "en": "The summary was sent to the relay for ticket {ticket}.",
        "es": "El resumen se envió al relé para la incidencia {ticket}.",
    },
    "ending.summary_failed": {
        "en": "The summary could not be uploaded: {problem}",
        "es": "No se pudo subir el resumen: {problem}",
    },
    "ending.ticket_link": {"en": "Ticket: {url}", "es": "Incidencia: {url}"},
    "ending.no_ticket_link": {
        "en": "This ticket has no link (start the session with a ticket link to see one).",
        "es": "Esta incidencia no tiene enlace (empiece la sesión con un enlace para verlo).",
    },
}

_FIELDS = string.Formatter()


def language() -> str:
    """The viewer's language: ``PUENTE_LANG``, then the POSIX variables; else English."""
    for variable in ("PUENTE_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value:
            return "es" if value.lower().startswith("es") else "en"
    return "en"


def tr(key: str, **fields: object) -> str:
    """The text of ``key`` in the current language, its placeholders filled."""
    entry = CATALOG[key]
    return entry.get(language(), entry["en"]).format(**fields)


def tr_count(key: str, count: int, **fields: object) -> str:
    """``key.one`` for exactly one, else ``key.many`` (English and Spanish both put
    only 1 in the singular: "0 sesiones", "1 sesión", "2 sesiones")."""
    return tr(f"{key}.one" if count == 1 else f"{key}.many", count=count, **fields)


#: The relay's refusal codes the viewer says in the technician's language.
_RELAY_CODES = ("taken", "offered_elsewhere", "closed", "not_found", "no_profile")


def relay_sentence(exc: Exception) -> str:
    """What the relay or the link said, in the viewer's language: the known refusals
    by their code, the rest with the relay's own sentence quoted (it is the relay's,
    and says what to do)."""
    from link.errors import RelayUnavailable, SessionLost

    from ..errors import RelayApiError

    if isinstance(exc, RelayApiError):
        if exc.status == 401:
            return tr("relay.token")
        if exc.code in _RELAY_CODES:
            return tr(f"relay.{exc.code}")
        if exc.code == "device_offline":
            return tr("relay.device_offline")
        return tr("relay.other", message=str(exc))
    if isinstance(exc, RelayUnavailable):
        return tr("link.unreachable")
    if isinstance(exc, SessionLost):
        return tr("link.lost", reason=str(exc))
    return str(exc)


def known(key: str, value: object) -> str:
    """The text of ``key`` if the catalog has it, else ``value`` (from the relay or a
    device) made inert: states, severities and modes the viewer has no words for yet."""
    from protocol.safe_text import safe_text

    return tr(key) if key in CATALOG else safe_text(str(value or ""), 40)


#: The console's result sentences (technician.ssh_commands) the viewer shows, by shape:
#: each is said again in the viewer's language, with the names it carried.
_RESULTS = (
    (re.compile(r"the customer stopped (?P<capability>[\w-]+)"), "result.stopped"),
    (re.compile(r"the customer declined (?P<capability>[\w-]+)"), "result.declined"),
    (
        re.compile(r"the customer's agent cannot do (?P<capability>[\w-]+); update it"),
        "result.cannot",
    ),
    (re.compile(r"(?P<capability>[\w-]+) failed on the customer's computer"), "result.failed"),
    (re.compile(r"refused before anything ran: (?P<reason>.*)", re.S), "result.refused_before"),
    (re.compile(r"(?P<what>.+): no such file on the customer's computer"), "result.no_such_file"),
    (re.compile(r"(?P<what>.+) is a folder; get copies one file at a time"), "result.is_folder"),
    (
        re.compile(r"(?P<what>.+) is not a file here; give the path of a file to send"),
        "result.not_a_file",
    ),
)


def result_sentence(message: str) -> str:
    """A console result's sentence in the viewer's language when the viewer knows its
    shape; else as the client library said it."""
    for pattern, key in _RESULTS:
        match = pattern.fullmatch(message)
        if match:
            return tr(key, **match.groupdict())
    return message


def mode_text(mode: str) -> str:
    """An enrolled device's unattended mode in words (an unknown one as it came)."""
    return known(f"devices.mode.{mode}", mode)


def placeholders(text: str) -> set[str]:
    """The ``{names}`` a catalog text fills (for the catalog test)."""
    return {name for _, name, _, _ in _FIELDS.parse(text) if name}
