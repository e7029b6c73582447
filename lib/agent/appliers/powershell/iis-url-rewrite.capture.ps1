# emfleet iis-url-rewrite.capture: reads the site's own rule of a name (web.config) and its position.
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
    $position = Get-LocalPosition $rules $index
    $reply = @{ ruleXml = $null; position = $null }
    if ($position -ge 0) { $reply = @{ ruleXml = [string] (Get-RuleXml ($rules[$index])); position = $position } }
}
