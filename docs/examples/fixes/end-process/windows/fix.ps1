# End one process by id (never the agent that runs this script).
$target = [int]$env:PUENTE_PARAM_PID
$self = Get-CimInstance Win32_Process -Filter "ProcessId = $PID"
if ($target -eq $self.ParentProcessId) { Write-Error "Refusing to end the remote-support agent itself."; exit 2 }
$process = Get-Process -Id $target -ErrorAction SilentlyContinue
if (-not $process) { "No process $target is running."; exit 0 }
"process: $($process.Id) $($process.ProcessName)"
if ($env:PUENTE_DRY_RUN -eq "1") { "would close process $target"; exit 0 }
Stop-Process -Id $target -Force -ErrorAction Stop
"process $target closed"
