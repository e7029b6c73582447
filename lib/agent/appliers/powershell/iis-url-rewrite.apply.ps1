# emfleet iis-url-rewrite.apply: writes one rule to the site's own web.config, where Microsoft's EOMT writes it.
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
    $index = Find-Rule $rules $in.ruleName
    # A second rule of a name the site already inherits (applicationHost.config) would make IIS
    # refuse the site's whole configuration (HTTP 500.19).
    if ($index -ge 0 -and -not $rules[$index].IsLocallyStored) {
        throw ("Site '" + $in.site + "' already inherits a rule named '" + $in.ruleName + "' from applicationHost.config; a second one would make IIS refuse the site")
    }
    $rule = $rules.CreateElement('rule')
    Copy-RuleXml $in.ruleXml $rule
    if ([string] $rule.GetAttributeValue('name') -cne $in.ruleName) {
        throw ("The rule XML is named '" + $rule.GetAttributeValue('name') + "', not '" + $in.ruleName + "'")
    }
    # A rule of that name is replaced where it stands: IIS evaluates rules in order. (Microsoft
    # clears it and adds the new one last: EOMTv2.ps1 lines 349-354.)
    if ($index -ge 0) {
        $rules.RemoveAt($index)
        $null = $rules.AddAt($index, $rule)
    } else {
        $null = $rules.Add($rule)
    }
    $manager.CommitChanges()
    $content = Get-RuleContent $rule
    $reply = @{ ok = $true; notInForce = (Get-Cancellations (New-ServerManager) $in.site $content) }
}
