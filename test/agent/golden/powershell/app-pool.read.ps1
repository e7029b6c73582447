# emfleet app-pool.read: constant text; what it acts on arrives as JSON on standard input.

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

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    $reply = @{ state = [string] $pool.State; autoStart = [bool] $pool.AutoStart }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
