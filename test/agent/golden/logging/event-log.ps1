# emfleet event-log: writes each JSON line of standard input to the Application log.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0
while ($null -ne ($line = [Console]::In.ReadLine())) {
    try {
        $entry = ConvertFrom-Json -InputObject $line
        Write-EventLog -LogName Application -Source 'emfleet-agent' -EventId ([int] $entry.id) -EntryType ([string] $entry.type) -Message ([string] $entry.message)
    } catch {
        [Console]::Error.WriteLine($_.Exception.Message)
    }
}
