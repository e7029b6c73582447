# emfleet app-pool.read: reads an application pool's state, auto-start and start mode.
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
    $reply = @{ state = [string] $pool.State; autoStart = [bool] $pool.AutoStart; startMode = [string] $pool.StartMode }
}
