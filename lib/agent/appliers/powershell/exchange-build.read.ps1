# emfleet exchange-build.read: the Exchange build of this server, from Setup's registry key and ExSetup.exe.
# Constant text; it reads HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\Setup and Bin\ExSetup.exe under
# its MsiInstallPath, as CSS-Exchange HealthChecker does. Nothing it acts on comes from outside.
# The registry and file version need the full language, which WDAC or AppLocker withhold from
# scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell sees the 32-bit registry view, where Exchange's Setup key is not.
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    $reply = @{}
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SOFTWARE\Microsoft\ExchangeServer\v15\Setup')
    if ($null -ne $key) {
        foreach ($name in @('MsiProductMajor', 'MsiProductMinor', 'MsiBuildMajor', 'MsiBuildMinor')) {
            $value = $key.GetValue($name)
            if ($null -ne $value) { $reply[$name] = [int] $value }
        }
        $installPath = $key.GetValue('MsiInstallPath')
        if ($null -ne $installPath) {
            $exSetup = Join-Path ([string] $installPath) 'Bin\ExSetup.exe'
            if (Test-Path -LiteralPath $exSetup) { $reply['ExSetupVersion'] = [string] (Get-Item -LiteralPath $exSetup).VersionInfo.FileVersion }
        }
    }
}
