# emfleet service.read: reads a service's status, start type and running dependents.
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
    $reply = @{ status = [string] $service.Status; startType = [string] (Get-StartType $service); runningDependents = (Get-RunningDependents $service) }
}
