# Install a battletracker volunteer node on Windows, register it, start it at logon.
#
#   powershell -ExecutionPolicy Bypass -File scripts\install-node.ps1 -Server https://tracker.example -Invite CODE
#
# The same steps as install-node.sh: find Python >= 3.11; make a venv in
# %LOCALAPPDATA%\battletracker\venv; install battletracker from the server's wheel (its
# SHA-256 checked against what the server announces) or, with -FromIndex, from the
# package index, with the server's constraints file when it offers one; register with the
# invite code; install a Scheduled Task that runs `battletracker node run` at logon (the
# fetch worker uses `celery -P solo` there: prefork does not run on Windows); run
# `battletracker node check`. Undo with scripts\uninstall-node.ps1.
param(
    [Parameter(Mandatory = $true)][string]$Server,
    [string]$Invite = "",
    [string]$Name = "",
    [switch]$FromIndex,
    [switch]$NoService
)
$ErrorActionPreference = "Stop"
$Server = $Server.TrimEnd("/")
$Home_ = if ($env:BATTLETRACKER_HOME) { $env:BATTLETRACKER_HOME } else { Join-Path $env:LOCALAPPDATA "battletracker" }

function Fail([string]$Message) { Write-Error "install-node: $Message"; exit 1 }

# 1. Python 3.11 or newer (the py launcher first, then python on PATH)
$Python = $null
foreach ($candidate in @(@("py", "-3"), @("python"))) {
    try {
        & $candidate[0] $candidate[1..9] -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>$null
        if ($LASTEXITCODE -eq 0) { $Python = $candidate; break }
    } catch { }
}
if (-not $Python) { Fail "Python 3.11 or newer is needed: install it from python.org (tick 'Add to PATH') and run this again." }

# 2. the node's own environment
$Venv = Join-Path $Home_ "venv"
New-Item -ItemType Directory -Force -Path $Home_ | Out-Null
& $Python[0] $Python[1..9] -m venv $Venv
if ($LASTEXITCODE -ne 0) { Fail "could not make a venv in $Venv" }
$Py = Join-Path $Venv "Scripts\python.exe"
& $Py -m pip install -q --upgrade pip

# 3. battletracker itself: the server's wheel (hash checked) or the package index
$Downloads = Join-Path $Home_ "downloads"
New-Item -ItemType Directory -Force -Path $Downloads | Out-Null
try {
    $Release = Invoke-RestMethod -Uri "$Server/api/v1/node/release" -TimeoutSec 30
} catch { Fail "the server at $Server did not answer ($_); check the address" }
$PipArgs = @("-q")
if ($Release.constraints_url) {
    $Constraints = Join-Path $Downloads "constraints.txt"
    Invoke-WebRequest -Uri ($Server + $Release.constraints_url) -OutFile $Constraints -UseBasicParsing
    Write-Host "pinning versions with the server's constraints file"
    $PipArgs += @("--constraint", $Constraints)
}
if ($FromIndex -or -not $Release.wheel) {
    & $Py -m pip install @PipArgs "battletracker[node]"
} else {
    $Name_ = $Release.wheel.filename
    if ($Name_ -notmatch '^battletracker-[A-Za-z0-9_.+-]+\.whl$') { Fail "the server announced a strange wheel name '$Name_'" }
    $Wheel = Join-Path $Downloads $Name_
    Invoke-WebRequest -Uri ($Server + $Release.wheel.url) -OutFile $Wheel -UseBasicParsing
    $Got = (Get-FileHash -Algorithm SHA256 -Path $Wheel).Hash.ToLower()
    if ($Got -ne $Release.wheel.sha256) {
        Remove-Item $Wheel
        Fail "the wheel's SHA-256 is $Got, the server announced $($Release.wheel.sha256): not installed (tell the operator)"
    }
    Write-Host "installing $Name_ (SHA-256 checked)"
    & $Py -m pip install @PipArgs $Wheel
}
if ($LASTEXITCODE -ne 0) { Fail "pip could not install battletracker" }
$Bt = Join-Path $Venv "Scripts\battletracker.exe"
& $Bt --version

# 4. register (keeps the node's identity in your AppData, owner-only)
$Register = @("node", "register", "--server", $Server)
if ($Invite) { $Register += @("--invite", $Invite) }
if ($Name) { $Register += @("--name", $Name) }
& $Bt @Register
if ($LASTEXITCODE -ne 0) { Fail "registration failed (see above)" }

# 5. start at logon and keep running: a Scheduled Task (schtasks /Create /XML)
if (-not $NoService) { & $Bt node install-service }

# 6. check everything a node needs
& $Bt node check
if ($LASTEXITCODE -eq 0) {
    Write-Host "done: the node runs in the background. See it work: $Bt node status"
} else {
    Write-Host "installed, but some checks failed: read the lines above, fix, then run $Bt node check"
}
