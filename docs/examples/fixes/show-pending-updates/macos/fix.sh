#!/bin/sh
# Read-only: ask Software Update what is available.
softwareupdate --list 2>&1
