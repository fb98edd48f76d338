# Read-only: search Windows Update for updates not yet installed.
$session = New-Object -ComObject Microsoft.Update.Session
$result = $session.CreateUpdateSearcher().Search("IsInstalled=0 and IsHidden=0")
foreach ($update in $result.Updates) { $update.Title }
"$($result.Updates.Count) update(s) available."
$pending = Test-Path "HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired"
if ($pending) { "A restart is pending." } else { "No restart is pending." }
