# emfleet iis-url-rewrite.restore: puts back the site's own rule as captured, at its position.
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
    $section = Get-SiteRulesSection $manager $in.site
    $rules = $section.GetCollection()
    $index = Find-Rule $rules $in.ruleName
    if ((Get-LocalPosition $rules $index) -ge 0) { $rules.RemoveAt($index) }
    if ($null -ne $in.previousRuleXml) {
        # The check apply makes: a second rule of one name would make IIS refuse the site (HTTP 500.19).
        if ((Find-Rule $rules $in.ruleName) -ge 0) {
            throw ("Site '" + $in.site + "' already has a rule named '" + $in.ruleName + "' (inherited); the previous rule cannot be put back beside it")
        }
        $rule = $rules.CreateElement('rule')
        Copy-RuleXml $in.previousRuleXml $rule
        $null = $rules.AddAt((Get-InsertIndex $rules $in.previousRulePosition), $rule)
    }
    # As Microsoft's rollback: with no rule of the site's own left, the section goes from its
    # web.config (EOMT.ps1 lines 246-250, EOMTv2.ps1 lines 264-268).
    if ((Get-LocalRuleCount $rules) -eq 0) { $section.RevertToParent() }
    $manager.CommitChanges()
    $reply = @{ ok = $true }
}
