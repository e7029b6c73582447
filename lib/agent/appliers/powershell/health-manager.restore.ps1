# emfleet health-manager.restore: puts MSExchangeHM and MSExchangeHMRecovery back as they were before the first mitigation held them.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    # HM first, then HMRecovery, as StartAndCheckHM does (ExchangeMitigations.ps1 lines 678-715).
    foreach ($prior in $in.services) {
        $service = Get-RequiredService $prior.service
        Set-StartType $service ([string] $prior.startType)
        if ($prior.status -eq 'Running') { Start-ServiceBounded $service }
    }
    $reply = @{ ok = $true }
}
