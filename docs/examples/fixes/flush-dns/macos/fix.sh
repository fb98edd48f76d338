#!/bin/sh
# Flush the macOS DNS cache (directory services and mDNSResponder; needs root).
set -u
dscacheutil -flushcache && killall -HUP mDNSResponder && echo "DNS cache flushed"
