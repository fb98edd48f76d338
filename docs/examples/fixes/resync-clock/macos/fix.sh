#!/bin/sh
# Enable network time and step the clock once.
set -u
systemsetup -setusingnetworktime on 2>&1
sntp -sS time.apple.com 2>&1
date -u +"clock now: %Y-%m-%d %H:%M:%S UTC"
