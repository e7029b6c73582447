# emfleet service.read: constant text; what it acts on arrives as JSON on standard input.

$ErrorActionPreference = 'Stop'
# Progress records and warnings (Stop-Service's "Waiting for service...") would reach the output
# around the JSON reply.
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0

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

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $service = Get-RequiredService $in.service
    $reply = @{ status = [string] $service.Status; startType = [string] (Get-StartType $service) }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
