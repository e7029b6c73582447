# emfleet app-pool.restore: puts an application pool's auto-start, start mode and state back.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
. (Join-Path $PSScriptRoot 'emfleet-iis.ps1')
Invoke-EmfleetScript {
    param($in)
    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    # A pool still stopping cannot be started: let the stop finish first.
    if ($pool.State -eq 'Stopping') { Wait-AppPoolState $pool 'Stopped' }
    $pool.AutoStart = [bool] $in.autoStart
    if ($null -ne $in.startMode) { $pool.StartMode = [string] $in.startMode }
    $manager.CommitChanges()
    if ($in.state -eq 'Started' -and $pool.State -ne 'Started') {
        if ($pool.State -ne 'Starting') { $null = $pool.Start() }
        Wait-AppPoolState $pool 'Started'
    }
    $reply = @{ ok = $true }
}
