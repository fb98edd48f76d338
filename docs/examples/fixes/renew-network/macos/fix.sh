#!/bin/sh
# Renew the DHCP lease of one interface.
set -u
interface="$PUENTE_PARAM_INTERFACE"
ipconfig set "$interface" DHCP && sleep 3 && ipconfig getifaddr "$interface"
