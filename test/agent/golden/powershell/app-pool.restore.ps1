# emfleet app-pool.restore: constant text; what it acts on arrives as JSON on standard input.

$ErrorActionPreference = 'Stop'
# Progress records and warnings (Stop-Service's "Waiting for service...") would reach the output
# around the JSON reply.
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0

function New-ServerManager {
    Add-Type -AssemblyName 'Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35'
    New-Object Microsoft.Web.Administration.ServerManager
}

function Get-AppPool($manager, [string] $name) {
    $pool = $manager.ApplicationPools[$name]
    if ($null -eq $pool) { throw ("IIS has no application pool named '" + $name + "'") }
    $pool
}

# By exact name: Get-Service -Name takes wildcards, and a name such as '*' would match every service.
function Get-ServiceByName([string] $name) {
    Add-Type -AssemblyName System.ServiceProcess
    foreach ($service in [System.ServiceProcess.ServiceController]::GetServices()) {
        if ([string]::Equals($service.ServiceName, $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $service }
    }
}

# MSExchangeHM restarts what it finds stopped, so it is held stopped while a change is made, as EM
# does. Without -Force: should another service depend on it, the change fails instead of leaving
# that one stopped.
function Suspend-HealthManager([string] $target) {
    if ([string]::Equals($target, 'MSExchangeHM', [System.StringComparison]::OrdinalIgnoreCase)) { return }
    $healthManager = Get-ServiceByName 'MSExchangeHM'
    if ($null -ne $healthManager -and $healthManager.Status -eq 'Running') {
        Stop-Service -InputObject $healthManager
        $healthManager
    }
}

function Resume-HealthManager($healthManager) {
    if ($null -ne $healthManager) { Start-Service -InputObject $healthManager }
}

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    $healthManager = Suspend-HealthManager ''
    try {
        $pool.AutoStart = [bool] $in.autoStart
        $manager.CommitChanges()
        if ($in.state -eq 'Started' -and $pool.State -ne 'Started' -and $pool.State -ne 'Starting') { $null = $pool.Start() }
    } finally {
        Resume-HealthManager $healthManager
    }
    $reply = @{ ok = $true }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
