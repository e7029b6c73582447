# emfleet state-directory.secure: checks who may write the agent's journal, then limits its directory to SYSTEM and Administrators.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
Invoke-EmfleetScript {
    param($in)
    $directory = [string] $in.directory
    $allowed = @('S-1-5-18', 'S-1-5-32-544')
    # Rights that change the file or who may change it: WriteData, AppendData, WriteExtendedAttributes,
    # WriteAttributes, Delete, ChangePermissions, TakeOwnership, GenericWrite, GenericAll.
    $writeRights = [long] 0x000D0116 -bor [long] 0x50000000
    $writers = @()
    $journal = Join-Path $directory 'journal.json'
    # A journal others could write is not trusted: refuse before changing anything.
    if (Test-Path -LiteralPath $journal) {
        foreach ($rule in (Get-Acl -LiteralPath $journal).Access) {
            $sid = $rule.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value
            $writes = ([long] $rule.FileSystemRights -band $writeRights) -ne 0
            if ([string] $rule.AccessControlType -eq 'Allow' -and $writes -and $allowed -notcontains $sid) { $writers += $sid }
        }
    }
    if ($writers.Count -eq 0) {
        $null = New-Item -ItemType Directory -Force -Path $directory
        $security = New-Object System.Security.AccessControl.DirectorySecurity
        # Protected: nothing inherited from the parent (Users may write under ProgramData).
        $security.SetAccessRuleProtection($true, $false)
        foreach ($sid in $allowed) {
            $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
            $security.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule $identity, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow'))
        }
        $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'))
        Set-Acl -LiteralPath $directory -AclObject $security
    }
    $reply = @{ writableBy = $writers }
}
