# Pester 5 tests of Install-EmfleetAgent.ps1's pure parts, against the golden cases the Linux suite
# checks against the agent itself (test/agent/install-script.test.ts). On Windows:
#   Invoke-Pester .\lib\agent\install\Install-EmfleetAgent.Tests.ps1
BeforeAll {
    # The script's functions, defined from its syntax tree without running the script.
    $script = Join-Path $PSScriptRoot 'Install-EmfleetAgent.ps1'
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($script, [ref] $tokens, [ref] $errors)
    foreach ($definition in $ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $false)) {
        . ([scriptblock]::Create($definition.Extent.Text))
    }
    $golden = Join-Path $PSScriptRoot '..\..\..\test\agent\golden\install'
}

Describe 'ConvertTo-ExchangeBuild' {
    It '<name>' -ForEach (Get-Content -Raw (Join-Path $PSScriptRoot '..\..\..\test\agent\golden\install\build-cases.json') | ConvertFrom-Json) {
        $arguments = @{}
        foreach ($property in $parameters.PSObject.Properties) { $arguments[$property.Name] = $property.Value }
        ConvertTo-ExchangeBuild @arguments | Should -Be $expected
    }
}

Describe 'New-AgentConfigJson' {
    It '<name> gives <goldenFile>, byte for byte' -ForEach (Get-Content -Raw -Encoding UTF8 (Join-Path $PSScriptRoot '..\..\..\test\agent\golden\install\config-cases.json') | ConvertFrom-Json) {
        $arguments = @{}
        foreach ($property in $parameters.PSObject.Properties) { $arguments[$property.Name] = $property.Value }
        $expectedText = [System.IO.File]::ReadAllText((Join-Path $golden $goldenFile), [System.Text.Encoding]::ASCII)
        New-AgentConfigJson @arguments | Should -BeExactly $expectedText
    }
}

Describe 'Get-PrerequisiteProblems' {
    BeforeEach {
        $ready = @{ IsAdministrator = $true; Is64BitProcess = $true; PowerShellVersion = [version] '5.1.17763.1'; ExchangeBuild = '15.2.1544.4'; MailboxRole = $true; UrlRewriteVersion = [version] '7.2.1993'; WebAdministration = $true }
    }
    It 'says nothing on a ready server' {
        Get-PrerequisiteProblems -Facts $ready | Should -BeNullOrEmpty
    }
    It 'names each missing piece' {
        $facts = $ready.Clone()
        $facts.Is64BitProcess = $false
        $facts.UrlRewriteVersion = $null
        $facts.WebAdministration = $false
        $problems = @(Get-PrerequisiteProblems -Facts $facts)
        $problems.Count | Should -Be 3
        $problems[0] | Should -Match '32-bit PowerShell'
        $problems[1] | Should -Match 'URL Rewrite Module 2.x is not installed'
        $problems[2] | Should -Match 'Microsoft.Web.Administration'
    }
    It 'refuses an Edge Transport server' {
        $facts = $ready.Clone()
        $facts.MailboxRole = $false
        Get-PrerequisiteProblems -Facts $facts | Should -Match 'without the Mailbox role'
    }
    It 'refuses URL Rewrite 1.x' {
        $facts = $ready.Clone()
        $facts.UrlRewriteVersion = [version] '7.1.871'
        Get-PrerequisiteProblems -Facts $facts | Should -Match 'older than 2.x'
    }
}

Describe 'Get-MitigationServiceWarning' {
    It 'warns when EM runs with mitigations enabled' {
        Get-MitigationServiceWarning -ServiceStatus 'Running' -OrganizationMitigationsEnabled $true -ServerMitigationsEnabled $true | Should -Match 'Set-OrganizationConfig -MitigationsEnabled \$false'
    }
    It 'is quiet when the organization or the server turned them off, or EM does not run' {
        Get-MitigationServiceWarning -ServiceStatus 'Running' -OrganizationMitigationsEnabled $false -ServerMitigationsEnabled $true | Should -BeNullOrEmpty
        Get-MitigationServiceWarning -ServiceStatus 'Running' -OrganizationMitigationsEnabled $true -ServerMitigationsEnabled $false | Should -BeNullOrEmpty
        Get-MitigationServiceWarning -ServiceStatus 'Stopped' -OrganizationMitigationsEnabled $true -ServerMitigationsEnabled $true | Should -BeNullOrEmpty
    }
    It 'warns when the setting cannot be read' {
        Get-MitigationServiceWarning -ServiceStatus 'Running' -OrganizationMitigationsEnabled $null -ServerMitigationsEnabled $null | Should -Match 'could not be read'
    }
}

Describe 'Get-ServersAddLine' {
    It 'names the hybrid connection only when it is not the server name' {
        Get-ServersAddLine -Server 'EX01.contoso.com' -Build '15.2.1544.4' -HybridConnection 'ex01.contoso.com' | Should -BeExactly 'emfleet servers add ex01.contoso.com --build 15.2.1544.4'
        Get-ServersAddLine -Server 'ex10.fabrikam.contoso.com' -Build '15.2.1748.10' -HybridConnection 'ex10-fabrikam' | Should -BeExactly 'emfleet servers add ex10.fabrikam.contoso.com --build 15.2.1748.10 --relay-hc ex10-fabrikam'
    }
}
