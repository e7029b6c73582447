# emfleet event-log.write: writes each JSON line of standard input (id, type, message) to the Application log.
# Constant text, long-lived: the agent feeds it one line per event, so values are data and no
# process starts per event. The source emfleet-agent is registered by Install-EmfleetAgent.ps1.
# Write-EventLog needs the full language, which WDAC or AppLocker withhold from scripts they do
# not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# The agent runs every script in a 64-bit PowerShell; a 32-bit one means the wrong powershell.exe.
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
# Not Invoke-EmfleetScript: that reads standard input to its end once; this reads it line by line
# until the agent closes it. A line that fails is reported and the next one is still written.
while ($null -ne ($line = [Console]::In.ReadLine())) {
    try {
        $entry = ConvertFrom-Json -InputObject $line
        Write-EventLog -LogName Application -Source 'emfleet-agent' -EventId ([int] $entry.id) -EntryType ([string] $entry.type) -Message ([string] $entry.message)
    } catch {
        [Console]::Error.WriteLine((ConvertTo-AsciiJson @{ error = $_.Exception.Message }))
    }
}
