# Make sure the time service runs, then resynchronise.
Set-Service -Name w32time -StartupType Automatic
Start-Service -Name w32time
w32tm /resync /force
w32tm /query /status
exit $LASTEXITCODE
