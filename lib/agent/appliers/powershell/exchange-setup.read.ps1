# emfleet exchange-setup.read: whether Exchange setup (a cumulative or security update) is running.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    # Setup stops and disables Exchange services itself; a service the agent disables or starts
    # meanwhile is a known cause of failed cumulative updates.
    $setup = $null
    $running = @(Get-Process -Name 'ExSetup' -ErrorAction SilentlyContinue)
    if ($running.Count -gt 0) { $setup = 'ExSetup.exe is running (process ' + $running[0].Id + ')' }
    # Setup marks each role it is changing with a Watermark value, and leaves it behind when it fails.
    $exchange = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SOFTWARE\Microsoft\ExchangeServer\v15')
    if ($null -eq $setup -and $null -ne $exchange) {
        foreach ($role in $exchange.GetSubKeyNames()) {
            $key = $exchange.OpenSubKey($role)
            if ($null -ne $key -and $null -ne $key.GetValue('Watermark')) { $setup = 'Exchange setup has not finished: HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\' + $role + ' has a Watermark' }
        }
    }
    $reply = @{ setup = $setup }
}
