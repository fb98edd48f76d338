"""The Puente relay: pairs agents with technicians and forwards their ciphertext.

Run it with ``puente-relay serve`` (:mod:`relay.cli`) or embed it::

    from relay.config import RelayConfig
    from relay.server import RelayServer

    async with RelayServer(RelayConfig(data_dir="/var/lib/puente", port=0)) as relay:
        print(relay.port)
"""
