# emfleet exchange-build.read: the Exchange build of this server, from Setup's registry key and ExSetup.exe.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0
try {
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
    [Console]::Out.Write((ConvertTo-Json -InputObject $reply -Compress))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
