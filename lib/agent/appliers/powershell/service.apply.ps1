# emfleet service.apply: disables a service, then stops it (and the dependents the agent captured), then waits.
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
    # Disabled first, so nothing starts it while it stops; ExchangeMitigations.ps1 stops, then
    # disables (lines 482-485). Its running dependents stop with it: the agent has captured them.
    Set-StartType $service 'Disabled'
    Stop-ServiceBounded $service
    $reply = @{ ok = $true }
}
