# Remove a battletracker volunteer node installed by scripts\install-node.ps1.
#
#   powershell -ExecutionPolicy Bypass -File scripts\uninstall-node.ps1 [-Purge]
#
# Ends and deletes the Scheduled Task, then removes the venv. The node's identity and
# logs stay in your AppData unless you pass -Purge.
param([switch]$Purge)
$ErrorActionPreference = "Stop"
$Home_ = if ($env:BATTLETRACKER_HOME) { $env:BATTLETRACKER_HOME } else { Join-Path $env:LOCALAPPDATA "battletracker" }
$Venv = Join-Path $Home_ "venv"
$Bt = Join-Path $Venv "Scripts\battletracker.exe"
$NodeDir = $null
if (Test-Path $Bt) {
    & $Bt node uninstall-service
    $NodeDir = & (Join-Path $Venv "Scripts\python.exe") -c "import click, pathlib; print(pathlib.Path(click.get_app_dir('battletracker')) / 'node')"
} else {
    Write-Host "no node found in $Home_"
}
if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv; Write-Host "removed $Venv" }
if ($Purge -and $NodeDir -and (Test-Path $NodeDir)) {
    Remove-Item -Recurse -Force $NodeDir
    Write-Host "removed $NodeDir (identity, lease, logs)"
} elseif ($NodeDir) {
    Write-Host "kept $NodeDir (identity and logs); -Purge removes it"
}
