# Restart the print spooler and report its state.
Restart-Service -Name Spooler -Force -ErrorAction Stop
(Get-Service -Name Spooler).Status
