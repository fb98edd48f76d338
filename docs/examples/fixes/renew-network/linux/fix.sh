#!/bin/sh
# Reapply every connected NetworkManager device (fresh DHCP lease and settings).
set -u
if ! command -v nmcli >/dev/null 2>&1; then
    echo "NetworkManager (nmcli) is not installed; renew the connection from the system's network settings." >&2
    exit 3
fi
status=0
for device in $(nmcli -t -f DEVICE,STATE device status | awk -F: '$2 == "connected" { print $1 }'); do
    echo "reconnecting $device"
    nmcli device reapply "$device" 2>&1 || nmcli device connect "$device" 2>&1 || status=1
done
nmcli -t -f DEVICE,STATE,CONNECTION device status
exit $status
