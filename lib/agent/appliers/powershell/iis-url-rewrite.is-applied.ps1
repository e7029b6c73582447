# emfleet iis-url-rewrite.is-applied: whether a rule of that content is in force at the site and in each of its applications.
# Constant text; what it acts on arrives as JSON on standard input.
# Microsoft.Web.Administration and the service controller need the full language, which WDAC or
# AppLocker withhold from scripts they do not allow (Constrained Language mode): stop and say so.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }
# A 32-bit PowerShell cannot read IIS configuration (and Microsoft.Web.Administration fails).
if (-not [Environment]::Is64BitProcess) { exit 4 }
. (Join-Path $PSScriptRoot 'emfleet-common.ps1')
. (Join-Path $PSScriptRoot 'emfleet-iis.ps1')
Invoke-EmfleetScript {
    param($in)
    $manager = New-ServerManager
    Assert-UrlRewrite $manager
    Assert-Site $manager $in.site
    $rules = (Get-SiteRulesSection $manager $in.site).GetCollection()
    # The package's rule goes through the same schema as the site's, in an element never added.
    $wanted = $rules.CreateElement('rule')
    Copy-RuleXml $in.ruleXml $wanted
    $content = Get-RuleContent $wanted
    $cancelled = @()
    if (Test-RuleContent $rules $content) { $cancelled = Get-Cancellations $manager $in.site $content }
    # The name of the rule found, so that a rule found in place (EM's own, an admin's) can be adopted.
    $ruleName = $null
    foreach ($rule in $rules) {
        if ($null -eq $ruleName -and (Get-RuleContent $rule) -ceq $content) { $ruleName = [string] $rule.GetAttributeValue('name') }
    }
    $reply = @{ applied = (Test-RuleContent $rules $content) -and $cancelled.Count -eq 0; notInForce = $cancelled; ruleName = $ruleName }
}
