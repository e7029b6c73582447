#Requires -Version 5.1
<#
.SYNOPSIS
    Installs, updates or uninstalls the emfleet agent on an Exchange Mailbox server.

.DESCRIPTION
    Run it as Administrator in 64-bit Windows PowerShell 5.1 from the folder of the unpacked
    emfleet-agent-<version>-win-x64.zip. It checks the prerequisites and says exactly what is
    missing, copies the agent to -InstallDirectory, writes the listen key (ASCII, readable by
    SYSTEM and Administrators only) and agent.json to -DataDirectory, registers the event log
    source emfleet-agent, registers and starts the scheduled task \emfleet\emfleet-agent (at
    start-up, as SYSTEM, restarted after a failure), and prints the line to paste into
    `emfleet servers add`. Running it again updates the agent and its configuration in place.

    The agent runs as a scheduled task, not a Windows service: node.exe does not speak the service
    control protocol, and no service wrapper is shipped. Stopping the task ends node.exe at once;
    the agent's journal is written before every change, so nothing is lost.

    -Uninstall stops the agent, puts back everything every mitigation it applied changed (asking
    first, unless -Force), then removes the task, the program files and the listen key.

.EXAMPLE
    .\Install-EmfleetAgent.ps1 -Server ex01.contoso.com -RelayNamespace contoso-emfleet.servicebus.windows.net -HybridConnection ex01.contoso.com -ListenKey (Read-Host -AsSecureString 'Listen key') -TrustAnchor C:\Temp\MicrosoftRootCA2011.pem -TimestampAnchor C:\Temp\MicrosoftRootCA2010.pem

.EXAMPLE
    .\Install-EmfleetAgent.ps1 -Uninstall -Force
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    # The server's FQDN, as registered with `emfleet servers add`.
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')]
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$')]
    [string] $Server,

    # The Azure Relay namespace, e.g. contoso-emfleet.servicebus.windows.net.
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')]
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$')]
    [string] $RelayNamespace,

    # The hybrid connection infra/main.bicep made for this server: named by its FQDN (the default).
    [Parameter(ParameterSetName = 'Install')]
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$')]
    [string] $HybridConnection,

    # The primary key of the hybrid connection's listen rule: -ListenKey (Read-Host -AsSecureString).
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')]
    [System.Security.SecureString] $ListenKey,

    # PEM files of the certificates the agent trusts packages to chain to (Microsoft Root Certificate Authority 2011).
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')]
    [string[]] $TrustAnchor,

    # PEM files of the time-stamp authorities' roots (Microsoft Root Certificate Authority 2010): a
    # package is then judged at its time-stamped signing time, so a rotated signer is not Expired.
    [Parameter(ParameterSetName = 'Install')]
    [string[]] $TimestampAnchor = @(),

    [Parameter(ParameterSetName = 'Install')]
    [string] $ListenKeyName = 'listen',

    # Only when the agent's own detection (ExSetup.exe, the Setup registry key) is wrong.
    [Parameter(ParameterSetName = 'Install')]
    [ValidatePattern('^\d{1,5}\.\d{1,5}\.\d{1,5}\.\d{1,5}$')]
    [string] $Build,

    [Parameter(Mandatory = $true, ParameterSetName = 'Uninstall')]
    [switch] $Uninstall,

    # Uninstall without asking.
    [switch] $Force,

    [string] $InstallDirectory = (Join-Path $env:ProgramFiles 'emfleet-agent'),
    [string] $DataDirectory = (Join-Path $env:ProgramData 'emfleet')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$TaskPath = '\emfleet\'
$TaskName = 'emfleet-agent'
$EventSource = 'emfleet-agent'

# ---- pure parts (golden cases in Install-EmfleetAgent.Tests.ps1) --------------------------------

# The Exchange build as the agent reads it: ExSetup.exe's file version (Security Updates change it)
# first, else the Setup key's MsiProductMajor.MsiProductMinor.MsiBuildMajor.MsiBuildMinor. Returns
# the build, or $null when neither is a build of Exchange 2016 (15.1), 2019 or SE (15.2).
function ConvertTo-ExchangeBuild {
    param([string] $ExSetupVersion, $MsiProductMajor, $MsiProductMinor, $MsiBuildMajor, $MsiBuildMinor)
    $candidates = @()
    if ($ExSetupVersion) { $candidates += $ExSetupVersion }
    if ($null -ne $MsiProductMajor -and $null -ne $MsiProductMinor -and $null -ne $MsiBuildMajor -and $null -ne $MsiBuildMinor) {
        $candidates += ('{0}.{1}.{2}.{3}' -f $MsiProductMajor, $MsiProductMinor, $MsiBuildMajor, $MsiBuildMinor)
    }
    foreach ($candidate in $candidates) {
        if ($candidate -notmatch '^\s*(\d{1,5})\.(\d{1,5})\.(\d{1,5})\.(\d{1,5})\s*$') { continue }
        $parts = @([int] $Matches[1], [int] $Matches[2], [int] $Matches[3], [int] $Matches[4])
        if ($parts[0] -ne 15 -or ($parts[1] -ne 1 -and $parts[1] -ne 2)) { continue }
        return ($parts -join '.')
    }
    return $null
}

# A JSON string literal, ASCII only (\uXXXX beyond), the same on every PowerShell version:
# ConvertTo-Json's spacing and escaping differ between 5.1 and 7.
function ConvertTo-JsonString([string] $Text) {
    $builder = New-Object System.Text.StringBuilder
    $null = $builder.Append('"')
    foreach ($character in $Text.ToCharArray()) {
        $code = [int] $character
        if ($character -eq '"') { $null = $builder.Append('\"') }
        elseif ($character -eq '\') { $null = $builder.Append('\\') }
        elseif ($code -lt 0x20 -or $code -gt 0x7e) { $null = $builder.Append(('\u{0:x4}' -f $code)) }
        else { $null = $builder.Append($character) }
    }
    $null = $builder.Append('"')
    $builder.ToString()
}

# agent.json's text (docs/agent.md, "agent.json"); paths as given, LF line ends.
function New-AgentConfigJson {
    param(
        [string] $Server,
        [string] $RelayNamespace,
        [string] $HybridConnection,
        [string] $ListenKeyName,
        [string] $KeyFile,
        [string[]] $Anchors,
        [string[]] $TimestampAnchors,
        [string] $StateDirectory,
        [string] $Build
    )
    $anchorList = ($Anchors | ForEach-Object { ConvertTo-JsonString $_ }) -join ', '
    $trust = '"anchors": [' + $anchorList + ']'
    if ($TimestampAnchors) { $trust += ', "timestampAnchors": [' + (($TimestampAnchors | ForEach-Object { ConvertTo-JsonString $_ }) -join ', ') + ']' }
    $lines = @(
        '{',
        ('  "server": ' + (ConvertTo-JsonString $Server) + ',')
    )
    if ($Build) { $lines += ('  "build": ' + (ConvertTo-JsonString $Build) + ',') }
    $lines += @(
        ('  "relay": { "namespace": ' + (ConvertTo-JsonString $RelayNamespace) + ', "hybridConnection": ' + (ConvertTo-JsonString $HybridConnection) + ', "keyName": ' + (ConvertTo-JsonString $ListenKeyName) + ', "keyFile": ' + (ConvertTo-JsonString $KeyFile) + ' },'),
        ('  "trust": { ' + $trust + ' },'),
        '  "applier": { "kind": "powershell" },',
        ('  "stateDirectory": ' + (ConvertTo-JsonString $StateDirectory)),
        '}'
    )
    ($lines -join "`n") + "`n"
}

# What is missing, one line each, from facts gathered by Get-PrerequisiteFacts; empty when nothing is.
function Get-PrerequisiteProblems {
    param([hashtable] $Facts)
    $problems = @()
    if (-not $Facts.IsAdministrator) { $problems += 'Not elevated: run Windows PowerShell as Administrator.' }
    if (-not $Facts.Is64BitProcess) { $problems += 'This is 32-bit PowerShell: run the 64-bit Windows PowerShell (C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe).' }
    if ($Facts.PowerShellVersion -lt [version] '5.1') { $problems += ('PowerShell ' + $Facts.PowerShellVersion + ' is too old: Windows PowerShell 5.1 (Windows Management Framework 5.1) is needed.') }
    if (-not $Facts.ExchangeBuild) { $problems += 'No Exchange Server 2016, 2019 or Subscription Edition found (HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup, Bin\ExSetup.exe): install the agent on an Exchange server.' }
    elseif (-not $Facts.MailboxRole) { $problems += ('Exchange ' + $Facts.ExchangeBuild + ' is here without the Mailbox role (HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\MailboxRole): emfleet mitigates Mailbox servers, not Edge Transport.') }
    if (-not $Facts.UrlRewriteVersion) { $problems += 'The IIS URL Rewrite Module 2.x is not installed (HKLM:\SOFTWARE\Microsoft\IIS Extensions\URL Rewrite): install rewrite_amd64_en-US.msi 2.1 from https://www.iis.net/downloads/microsoft/url-rewrite.' }
    elseif ($Facts.UrlRewriteVersion -lt [version] '7.2.0') { $problems += ('The IIS URL Rewrite Module is version ' + $Facts.UrlRewriteVersion + ', older than 2.x (7.2): install URL Rewrite 2.1.') }
    if (-not $Facts.WebAdministration) { $problems += 'Microsoft.Web.Administration 7.0.0.0 cannot be loaded (the IIS Management Scripts and Tools, and .NET Framework 4.x): Install-WindowsFeature Web-Scripting-Tools.' }
    $problems
}

# The warning when Exchange Emergency Mitigation would keep applying mitigations itself; $null when not.
function Get-MitigationServiceWarning {
    param([string] $ServiceStatus, $OrganizationMitigationsEnabled, $ServerMitigationsEnabled)
    if ($ServiceStatus -ne 'Running') { return $null }
    if ($OrganizationMitigationsEnabled -eq $false -or $ServerMitigationsEnabled -eq $false) { return $null }
    $state = 'with mitigations enabled'
    if ($null -eq $OrganizationMitigationsEnabled) { $state = 'and whether mitigations are enabled could not be read (no Exchange Management Shell)' }
    'The MSExchangeMitigation service is running ' + $state + ': Exchange Emergency Mitigation applies mitigations on its own. emfleet replaces that: run Set-OrganizationConfig -MitigationsEnabled $false once in the Exchange Management Shell (EM still polls and applies nothing). Mitigations EM already applied are adopted by the agent, not applied twice.'
}

# The line for `emfleet servers add`, run where the emfleet CLI is.
function Get-ServersAddLine {
    param([string] $Server, [string] $Build, [string] $HybridConnection)
    $line = 'emfleet servers add ' + $Server.ToLowerInvariant() + ' --build ' + $Build
    if ($HybridConnection -ne $Server.ToLowerInvariant()) { $line += ' --relay-hc ' + $HybridConnection }
    $line
}

# ---- facts of this server -----------------------------------------------------------------------

function Get-SetupValues {
    $values = @{}
    $key = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $values }
    foreach ($name in @('MsiProductMajor', 'MsiProductMinor', 'MsiBuildMajor', 'MsiBuildMinor', 'MsiInstallPath')) {
        if ($key.PSObject.Properties[$name]) { $values[$name] = $key.$name }
    }
    if ($values.ContainsKey('MsiInstallPath')) {
        $exSetup = Join-Path ([string] $values['MsiInstallPath']) 'Bin\ExSetup.exe'
        if (Test-Path -LiteralPath $exSetup) { $values['ExSetupVersion'] = [string] (Get-Item -LiteralPath $exSetup).VersionInfo.FileVersion }
    }
    $values
}

function Get-PrerequisiteFacts {
    $setup = Get-SetupValues
    $principal = New-Object System.Security.Principal.WindowsPrincipal ([System.Security.Principal.WindowsIdentity]::GetCurrent())
    $rewrite = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\IIS Extensions\URL Rewrite' -ErrorAction SilentlyContinue
    $rewriteVersion = $null
    if ($null -ne $rewrite -and $rewrite.PSObject.Properties['Version'] -and (Test-Path -LiteralPath (Join-Path $env:windir 'System32\inetsrv\rewrite.dll'))) {
        $rewriteVersion = [version] $rewrite.Version
    }
    $webAdministration = $true
    try {
        $null = [System.Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35')
    } catch {
        $webAdministration = $false
    }
    @{
        IsAdministrator   = $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)
        Is64BitProcess    = [Environment]::Is64BitProcess
        PowerShellVersion = $PSVersionTable.PSVersion
        ExchangeBuild     = ConvertTo-ExchangeBuild -ExSetupVersion $setup['ExSetupVersion'] -MsiProductMajor $setup['MsiProductMajor'] -MsiProductMinor $setup['MsiProductMinor'] -MsiBuildMajor $setup['MsiBuildMajor'] -MsiBuildMinor $setup['MsiBuildMinor']
        MailboxRole       = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\MailboxRole'
        UrlRewriteVersion = $rewriteVersion
        WebAdministration = $webAdministration
    }
}

function Get-MitigationServiceState {
    $service = Get-Service -Name 'MSExchangeMitigation' -ErrorAction SilentlyContinue
    $status = 'Missing'
    if ($null -ne $service) { $status = [string] $service.Status }
    $organization = $null
    $server = $null
    if ($status -eq 'Running') {
        try {
            if (-not (Get-Command Get-OrganizationConfig -ErrorAction SilentlyContinue)) { Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction Stop }
            $organization = [bool] (Get-OrganizationConfig).MitigationsEnabled
            $server = [bool] (Get-ExchangeServer -Identity $env:COMPUTERNAME).MitigationsEnabled
        } catch {
            $organization = $null
        }
    }
    @{ Status = $status; Organization = $organization; Server = $server }
}

# ---- changes ------------------------------------------------------------------------------------

# SYSTEM and Administrators only, nothing inherited: the listen key and the journal live here.
function Set-PrivateAcl([string] $Path) {
    $acl = Get-Acl -LiteralPath $Path
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($rule in @($acl.Access)) { $null = $acl.RemoveAccessRule($rule) }
    $inherit = [System.Security.AccessControl.InheritanceFlags]::None
    if ((Get-Item -LiteralPath $Path).PSIsContainer) { $inherit = [System.Security.AccessControl.InheritanceFlags] 'ContainerInherit, ObjectInherit' }
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = (New-Object System.Security.Principal.SecurityIdentifier $sid).Translate([System.Security.Principal.NTAccount])
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule $identity, 'FullControl', $inherit, 'None', 'Allow'))
    }
    Set-Acl -LiteralPath $Path -AclObject $acl
}

# ASCII or UTF-8 without a byte order mark: what `>` writes in Windows PowerShell 5.1 (UTF-16 with
# a BOM) would give the agent a 92-character key instead of 44.
function Write-TextFile([string] $Path, [string] $Text) {
    [System.IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.UTF8Encoding $false))
}

function ConvertFrom-SecureKey([System.Security.SecureString] $Secure) {
    $pointer = [System.Runtime.InteropServices.Marshal]::SecureStringToBSTR($Secure)
    try {
        [System.Runtime.InteropServices.Marshal]::PtrToStringBSTR($pointer)
    } finally {
        [System.Runtime.InteropServices.Marshal]::ZeroFreeBSTR($pointer)
    }
}

# PEM certificates copied into the data directory; returns where they are now.
function Copy-Anchors([string[]] $Files, [string] $Directory) {
    foreach ($file in $Files) {
        $text = [System.IO.File]::ReadAllText((Resolve-Path -LiteralPath $file).ProviderPath)
        if ($text -notmatch '-----BEGIN CERTIFICATE-----') { throw ($file + ' is not a PEM certificate.') }
        $target = Join-Path $Directory ([System.IO.Path]::GetFileName($file))
        Write-TextFile $target $text
        $target
    }
}

function Stop-Agent {
    $task = Get-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -ErrorAction SilentlyContinue
    if ($null -eq $task) { return }
    Stop-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName
    $deadline = (Get-Date).AddSeconds(30)
    while ((Get-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName).State -eq 'Running' -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 500 }
}

function Install-Agent {
    $facts = Get-PrerequisiteFacts
    $problems = @(Get-PrerequisiteProblems -Facts $facts)
    if ($problems.Count -gt 0) {
        foreach ($problem in $problems) { Write-Host ('MISSING: ' + $problem) -ForegroundColor Red }
        throw ('Prerequisites missing (' + $problems.Count + '); nothing was changed.')
    }
    $mitigation = Get-MitigationServiceState
    $warning = Get-MitigationServiceWarning -ServiceStatus $mitigation.Status -OrganizationMitigationsEnabled $mitigation.Organization -ServerMitigationsEnabled $mitigation.Server
    if ($warning) { Write-Warning $warning }

    $source = $PSScriptRoot
    foreach ($file in @('node.exe', 'emfleet-agent.js', 'emfleet-agent.cmd', 'README.txt', 'powershell\emfleet-common.ps1')) {
        if (-not (Test-Path -LiteralPath (Join-Path $source $file))) { throw ($file + ' is not beside this script: run it from the unpacked emfleet-agent zip.') }
    }
    $hybrid = $HybridConnection
    if (-not $hybrid) { $hybrid = $Server.ToLowerInvariant() }
    $key = (ConvertFrom-SecureKey $ListenKey).Trim()
    if ($key -notmatch '^[A-Za-z0-9+/=]{32,128}$') { throw 'The listen key is not a relay key (base64, as the listen rule''s primary key in the Azure portal).' }

    Stop-Agent
    $null = New-Item -ItemType Directory -Force -Path $InstallDirectory
    foreach ($file in @('node.exe', 'emfleet-agent.js', 'emfleet-agent.cmd', 'README.txt', 'Install-EmfleetAgent.ps1')) {
        Copy-Item -LiteralPath (Join-Path $source $file) -Destination $InstallDirectory -Force
    }
    # The applier's scripts, beside the agent.
    $null = New-Item -ItemType Directory -Force -Path (Join-Path $InstallDirectory 'powershell')
    Copy-Item -Path (Join-Path $source 'powershell\*.ps1') -Destination (Join-Path $InstallDirectory 'powershell') -Force

    $null = New-Item -ItemType Directory -Force -Path $DataDirectory
    Set-PrivateAcl $DataDirectory
    $trustDirectory = Join-Path $DataDirectory 'trust'
    $null = New-Item -ItemType Directory -Force -Path $trustDirectory
    $anchors = @(Copy-Anchors $TrustAnchor $trustDirectory)
    $timestampAnchors = @(Copy-Anchors $TimestampAnchor $trustDirectory)
    $keyFile = Join-Path $DataDirectory 'listen.key'
    Write-TextFile $keyFile $key
    Set-PrivateAcl $keyFile
    $configFile = Join-Path $DataDirectory 'agent.json'
    Write-TextFile $configFile (New-AgentConfigJson -Server $Server.ToLowerInvariant() -RelayNamespace $RelayNamespace -HybridConnection $hybrid -ListenKeyName $ListenKeyName -KeyFile $keyFile -Anchors $anchors -TimestampAnchors $timestampAnchors -StateDirectory (Join-Path $DataDirectory 'state') -Build $Build)

    if (-not [System.Diagnostics.EventLog]::SourceExists($EventSource)) { New-EventLog -LogName Application -Source $EventSource }

    $action = New-ScheduledTaskAction -Execute (Join-Path $InstallDirectory 'node.exe') -Argument ('"' + (Join-Path $InstallDirectory 'emfleet-agent.js') + '" --config "' + $configFile + '"') -WorkingDirectory $InstallDirectory
    $trigger = New-ScheduledTaskTrigger -AtStartup
    # A task cannot depend on W3SVC/WAS as a service can: start a minute after boot, and the agent itself waits (bounded) for both to run.
    $trigger.Delay = 'PT1M'
    $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit ([TimeSpan]::Zero) -MultipleInstances IgnoreNew -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    $null = Register-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Description 'emfleet agent: applies verified Exchange mitigations sent through Azure Relay' -Force
    Start-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName

    $log = Join-Path $DataDirectory 'state\logs\agent.log'
    $deadline = (Get-Date).AddSeconds(30)
    $listening = $false
    while (-not $listening -and (Get-Date) -lt $deadline) {
        Start-Sleep -Seconds 1
        if (Test-Path -LiteralPath $log) { $listening = [bool] (Select-String -LiteralPath $log -SimpleMatch '"event":"RelayListenerListening"' -Quiet) }
    }
    if ($listening) { Write-Host ('The agent is listening on hybrid connection ' + $hybrid + '.') -ForegroundColor Green }
    else { Write-Warning ('The agent is not listening yet; see ' + $log + ' and the Application event log (source ' + $EventSource + ').') }

    $build = $Build
    if (-not $build) { $build = $facts.ExchangeBuild }
    Write-Host ''
    Write-Host 'Now, where the emfleet CLI is, run:'
    Write-Host ('  ' + (Get-ServersAddLine -Server $Server -Build $build -HybridConnection $hybrid))
    Write-Host ('  emfleet test-connectivity --server ' + $Server.ToLowerInvariant())
}

function Uninstall-Agent {
    $configFile = Join-Path $DataDirectory 'agent.json'
    if (-not $Force -and -not $PSCmdlet.ShouldContinue('Every mitigation this agent applied is removed (what was there before is put back), then the agent. Continue?', 'Uninstall the emfleet agent')) {
        Write-Host 'Nothing was changed.'
        return
    }
    Stop-Agent
    if ((Test-Path -LiteralPath $configFile) -and (Test-Path -LiteralPath (Join-Path $InstallDirectory 'emfleet-agent.js'))) {
        $output = & (Join-Path $InstallDirectory 'node.exe') (Join-Path $InstallDirectory 'emfleet-agent.js') 'restore-all' '--config' $configFile
        $exitCode = $LASTEXITCODE
        $report = $output | ConvertFrom-Json
        foreach ($id in $report.restored) { Write-Host ('Removed ' + $id + ': prior state restored.') }
        if ($exitCode -ne 0) {
            foreach ($failure in $report.failed) { Write-Host ('FAILED ' + $failure.mitigationId + ': ' + $failure.error) -ForegroundColor Red }
            throw 'Some mitigations could not be removed; the agent is stopped but still installed. Fix the cause and run -Uninstall again.'
        }
    }
    if (Get-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -ErrorAction SilentlyContinue) { Unregister-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Confirm:$false }
    if (Test-Path -LiteralPath $InstallDirectory) { Remove-Item -LiteralPath $InstallDirectory -Recurse -Force }
    $keyFile = Join-Path $DataDirectory 'listen.key'
    if (Test-Path -LiteralPath $keyFile) { Remove-Item -LiteralPath $keyFile -Force }
    Write-Host ('The emfleet agent is uninstalled; its logs and empty journal stay in ' + $DataDirectory + '. Run emfleet servers remove ' + $env:COMPUTERNAME + ' where the CLI is.')
}

# The Pester tests (Install-EmfleetAgent.Tests.ps1) load the functions above from the script's syntax tree, without running this.
if ($Uninstall) { Uninstall-Agent } else { Install-Agent }
