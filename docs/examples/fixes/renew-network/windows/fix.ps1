# Release and renew every DHCP lease.
ipconfig /release | Out-Null
ipconfig /renew
exit $LASTEXITCODE
