# emfleet: what every applier script shares. Dot-sourced by each script after its environment
# checks; defines functions only. Values always arrive as JSON on standard input.
$ErrorActionPreference = 'Stop'
# Progress records and warnings would reach the output around the JSON reply.
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0

# JSON with everything beyond ASCII as a \u escape: the console code page is not UTF-8, and
# non-English servers' messages (stderr too) must arrive readable.
function ConvertTo-AsciiJson($value) {
    $json = ConvertTo-Json -InputObject $value -Compress -Depth 5
    [regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value })
}

# Runs the script's body with the input read once from standard input (never through the
# automatic variable for pipeline input: powershell.exe would read standard input itself to feed
# it). The body sets $reply; anything else it outputs is discarded, so the reply is the only
# thing on standard output. A failure is one JSON line on standard error and exit code 1.
function Invoke-EmfleetScript([scriptblock] $Body) {
    try {
        $in = [Console]::In.ReadToEnd() | ConvertFrom-Json
        # Every wait is bounded (ExchangeMitigations.ps1 polls up to a timeout in CheckOperationSuccess),
        # and ends before the agent would kill the process.
        $script:deadline = [DateTime]::UtcNow.AddSeconds([int] $in.waitSeconds)
        $reply = $null
        $null = . $Body $in
        [Console]::Out.Write((ConvertTo-AsciiJson $reply))
    } catch {
        [Console]::Error.Write((ConvertTo-AsciiJson @{ error = $_.Exception.Message }))
        exit 1
    }
}

function Get-Remaining {
    $left = $script:deadline - [DateTime]::UtcNow
    if ($left -lt [TimeSpan]::Zero) { return [TimeSpan]::Zero }
    $left
}

# By exact name: Get-Service -Name takes wildcards, and a name such as '*' would match every service.
function Get-ServiceByName([string] $name) {
    Add-Type -AssemblyName System.ServiceProcess
    foreach ($service in [System.ServiceProcess.ServiceController]::GetServices()) {
        if ([string]::Equals($service.ServiceName, $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $service }
    }
}

function Get-RequiredService([string] $name) {
    $service = Get-ServiceByName $name
    if ($null -eq $service) { throw ("No service is named '" + $name + "'") }
    $service
}

# ServiceController reports a delayed automatic start as Automatic; the registry tells them apart.
function Get-StartType($service) {
    $startType = [string] $service.StartType
    if ($startType -eq 'Automatic') {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SYSTEM\CurrentControlSet\Services\' + $service.ServiceName)
        if ($null -ne $key -and $key.GetValue('DelayedAutostart', 0) -eq 1) { $startType = 'AutomaticDelayedStart' }
    }
    $startType
}

# Running or starting counts as running, stopping as stopped: the state it is settling into.
function Get-SettledStatus($service) {
    $service.Refresh()
    if ($service.Status -eq 'Stopped' -or $service.Status -eq 'StopPending') { return 'Stopped' }
    'Running'
}

# Through sc.exe, which tells the service manager at once. Set-Service in Windows PowerShell has
# no delayed start, and a DelayedAutostart registry write is read only at the next boot.
function Set-StartType($service, [string] $startType) {
    $modes = @{ Automatic = 'auto'; AutomaticDelayedStart = 'delayed-auto'; Manual = 'demand'; Disabled = 'disabled' }
    if (-not $modes.ContainsKey($startType)) { throw ("'" + $startType + "' is not a start type") }
    $output = & (Join-Path $env:SystemRoot 'System32\sc.exe') config $service.ServiceName 'start=' $modes[$startType]
    if ($LASTEXITCODE -ne 0) { throw ("sc.exe config " + $service.ServiceName + " start= " + $modes[$startType] + " failed with " + $LASTEXITCODE + ": " + (($output | Out-String).Trim())) }
}

function Wait-ServiceStatus($service, [string] $status) {
    try {
        $service.WaitForStatus($status, (Get-Remaining))
    } catch [System.ServiceProcess.TimeoutException] {
        $service.Refresh()
        throw ("Service " + $service.ServiceName + " is " + $service.Status + ", not " + $status + ", after waiting; it may still get there")
    }
}

# ServiceController.Stop stops the services that depend on this one too (as Stop-Service -Force
# does); the caller has captured those that were running so that restore starts them again.
function Stop-ServiceBounded($service) {
    $service.Refresh()
    if ($service.Status -eq 'Stopped') { return }
    if ($service.Status -ne 'StopPending') { $service.Stop() }
    Wait-ServiceStatus $service 'Stopped'
}

function Start-ServiceBounded($service) {
    $service.Refresh()
    # A service still stopping cannot be started: let the stop finish first.
    if ($service.Status -eq 'StopPending') { Wait-ServiceStatus $service 'Stopped' }
    if ($service.Status -eq 'Running') { return }
    if ($service.Status -ne 'StartPending') { $service.Start() }
    Wait-ServiceStatus $service 'Running'
}

# Services that depend on this one and are not stopped; the service manager lists indirect ones too.
function Get-RunningDependents($service) {
    $names = @()
    foreach ($dependent in $service.DependentServices) {
        if ($dependent.Status -ne 'Stopped') { $names += $dependent.ServiceName }
    }
    , $names
}
