# emfleet iis-url-rewrite.capture: constant text; what it acts on arrives as JSON on standard input.

$ErrorActionPreference = 'Stop'
# Progress records and warnings (Stop-Service's "Waiting for service...") would reach the output
# around the JSON reply.
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0

function New-ServerManager {
    Add-Type -AssemblyName 'Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35'
    New-Object Microsoft.Web.Administration.ServerManager
}

function Assert-Site($manager, [string] $site) {
    if ($null -eq $manager.Sites[$site]) { throw ("IIS has no site named '" + $site + "'") }
}

# The rules emfleet edits: those of <location path="site"> in applicationHost.config.
function Get-SiteRules($manager, [string] $site) {
    $rules = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/rewrite/rules', $site).GetCollection()
    # The comma keeps PowerShell from unrolling the collection into its rules.
    return , $rules
}

function Find-Rule($rules, [string] $name) {
    for ($index = 0; $index -lt $rules.Count; $index++) {
        if ([string]::Equals([string] $rules[$index].GetAttributeValue('name'), $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $index }
    }
    -1
}

function Format-ConfigValue($attribute) {
    $value = $attribute.Value
    if ($value -is [bool]) { return $value.ToString().ToLowerInvariant() }
    if ($attribute.Schema.Type -eq 'enum') {
        foreach ($choice in $attribute.Schema.GetEnumValues()) {
            if ($choice.Value -eq $value) { return $choice.Name }
        }
    }
    [System.Convert]::ToString($value, [System.Globalization.CultureInfo]::InvariantCulture)
}

# Explicit: only what the configuration sets, so that adding the XML back writes the same rule.
# Expanded: every attribute with its effective value, so that two rules that IIS treats alike (one
# spelling out a default, the other not) give the same text.
function Add-ConfigXml($document, $parent, $element, [bool] $expanded) {
    $node = $parent.AppendChild($document.CreateElement($element.ElementTagName))
    foreach ($attribute in $element.Attributes) {
        if ($expanded -or -not $attribute.IsInheritedFromDefaultValue) { $node.SetAttribute($attribute.Name, (Format-ConfigValue $attribute)) }
    }
    foreach ($child in $element.ChildElements) { Add-ConfigXml $document $node $child $expanded }
    if ($null -ne $element.Schema.CollectionSchema) {
        foreach ($entry in $element.GetCollection()) { Add-ConfigXml $document $node $entry $expanded }
    }
    if (-not $expanded -and -not $node.get_HasAttributes() -and -not $node.get_HasChildNodes()) { $null = $parent.RemoveChild($node) }
}

function Get-RuleXml($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $false
    $document.get_OuterXml()
}

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-SiteRules $manager $in.site
    $index = Find-Rule $rules $in.ruleName
    $ruleXml = $null
    if ($index -ge 0) { $ruleXml = [string] (Get-RuleXml ($rules[$index])) }
    $reply = @{ ruleXml = $ruleXml }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
