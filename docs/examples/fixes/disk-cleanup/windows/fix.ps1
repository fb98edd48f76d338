# Free disk space: the user's temporary folders and the recycle bin.
# $env:PUENTE_DRY_RUN = "1" only lists what would be deleted.
$ErrorActionPreference = "SilentlyContinue"
$days = [int]$env:PUENTE_PARAM_DAYS
$dry = $env:PUENTE_DRY_RUN -eq "1"
$cutoff = (Get-Date).AddDays(-$days)
$targets = @($env:TEMP, (Join-Path $env:LOCALAPPDATA "Temp"),
             (Join-Path $env:LOCALAPPDATA "Microsoft\Windows\INetCache")) | Select-Object -Unique
$total = 0
foreach ($dir in $targets) {
    if (-not (Test-Path $dir)) { continue }
    $files = Get-ChildItem -Path $dir -Recurse -File -Force | Where-Object { $_.LastWriteTime -lt $cutoff }
    $bytes = ($files | Measure-Object -Property Length -Sum).Sum
    if (-not $bytes) { $bytes = 0 }
    $total += $bytes
    $kib = [math]::Round($bytes / 1KB)
    if ($dry) { "would delete $kib KiB of files in $dir" }
    else { $files | Remove-Item -Force; "deleted $kib KiB of files in $dir" }
}
if ($env:PUENTE_PARAM_TRASH -eq "true") {
    if ($dry) { "would empty the recycle bin" }
    else { Clear-RecycleBin -Force; "emptied the recycle bin" }
}
$kib = [math]::Round($total / 1KB)
if ($dry) { "In total $kib KiB would be freed." } else { "In total $kib KiB were freed." }
