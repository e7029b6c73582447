# emfleet health-manager.hold: disables, then stops MSExchangeHM and MSExchangeHMRecovery, each wait bounded.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    # Managed Availability restarts a stopped pool or service (autoStart=false does not prevent an
    # explicit start), so Microsoft stops and disables both before each pool or UM mitigation
    # (ExchangeMitigations.ps1, StopAndCheckHM, lines 641-676). Both are disabled before either
    # stops, so neither starts the other again in between.
    $services = @()
    foreach ($name in @('MSExchangeHM', 'MSExchangeHMRecovery')) {
        $service = Get-ServiceByName $name
        if ($null -ne $service) { $services += $service }
    }
    foreach ($service in $services) { Set-StartType $service 'Disabled' }
    foreach ($service in $services) { Stop-ServiceBounded $service }
    $reply = @{ ok = $true }
}
