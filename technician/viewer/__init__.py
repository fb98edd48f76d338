"""``puente-tech viewer``: the technician's desktop viewer (PySide6).

The window (:mod:`.window`) stays on the GUI thread; the session, the stream and
the decoding live in :class:`.worker.SessionWorker`'s asyncio thread.
"""
