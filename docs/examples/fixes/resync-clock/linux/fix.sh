#!/bin/sh
# Enable NTP and step the clock now (chrony, systemd-timesyncd or ntpd).
set -u
date -u +"clock before: %Y-%m-%d %H:%M:%S UTC"
if command -v timedatectl >/dev/null 2>&1; then
    timedatectl set-ntp true 2>&1 || echo "timedatectl could not enable synchronisation" >&2
fi
if command -v chronyc >/dev/null 2>&1; then
    chronyc -a makestep 2>&1
elif command -v systemctl >/dev/null 2>&1 && systemctl is-enabled systemd-timesyncd >/dev/null 2>&1; then
    systemctl restart systemd-timesyncd 2>&1 && sleep 3
elif command -v ntpdate >/dev/null 2>&1; then
    ntpdate -u pool.ntp.org 2>&1
else
    echo "No time synchronisation service is installed (chrony, systemd-timesyncd or ntpdate)." >&2
    exit 3
fi
date -u +"clock after:  %Y-%m-%d %H:%M:%S UTC"
command -v timedatectl >/dev/null 2>&1 && timedatectl show -p NTPSynchronized
exit 0
