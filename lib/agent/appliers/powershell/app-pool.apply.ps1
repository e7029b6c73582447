# emfleet app-pool.apply: turns an application pool's auto-start off, then stops it, then waits.
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
    # Microsoft's order (ExchangeMitigations.ps1 lines 526-531): startMode OnDemand and autoStart
    # off first, committed, so that nothing starts the pool again; then stop; then wait.
    $pool.StartMode = 'OnDemand'
    $pool.AutoStart = $false
    $manager.CommitChanges()
    # What Stop-WebAppPool does; stopping a stopped pool is an error.
    if ($pool.State -eq 'Started' -or $pool.State -eq 'Starting') { $null = $pool.Stop() }
    Wait-AppPoolState $pool 'Stopped'
    $reply = @{ ok = $true }
}
