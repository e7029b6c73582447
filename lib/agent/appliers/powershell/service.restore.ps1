# emfleet service.restore: puts a service's start type and status back, and starts the dependents that were running.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    $service = Get-RequiredService $in.service
    Set-StartType $service ([string] $in.startType)
    if ($in.status -eq 'Running') { Start-ServiceBounded $service }
    foreach ($name in $in.runningDependents) { Start-ServiceBounded (Get-RequiredService $name) }
    $reply = @{ ok = $true }
}
