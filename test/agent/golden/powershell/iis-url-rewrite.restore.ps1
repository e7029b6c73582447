# emfleet iis-url-rewrite.restore: constant text; what it acts on arrives as JSON on standard input.

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

# XML nodes are read through get_ methods: PowerShell's XML adapter lets an attribute or child
# named like a property (Name, Attributes...) shadow it.
function Copy-XmlToConfig($node, $element) {
    foreach ($attribute in $node.get_Attributes()) {
        $name = $attribute.get_Name()
        $text = $attribute.get_Value()
        $schema = $element.Schema.AttributeSchemas[$name]
        # The schema lookup ignores case; IIS attribute names do not.
        if ($null -eq $schema -or $schema.Name -cne $name) { throw ("<" + $node.get_Name() + "> has no attribute '" + $name + "' in IIS") }
        # The value takes the type the schema declares (SetAttributeValue refuses a string for a uint,
        # enums read back as numbers), computed here rather than returned by a function, whose output
        # PowerShell could pass to the method wrapped in a PSObject.
        $value = $text
        if ($schema.Type -eq 'bool') {
            $value = [bool]::Parse($text)
        } elseif ($schema.Type -eq 'uint') {
            $value = [uint32]::Parse($text, [System.Globalization.CultureInfo]::InvariantCulture)
        } elseif ($schema.Type -eq 'enum') {
            $value = $null
            foreach ($choice in $schema.GetEnumValues()) {
                if ([string]::Equals($choice.Name, $text, [System.StringComparison]::OrdinalIgnoreCase)) { $value = [int] $choice.Value }
            }
            if ($null -eq $value) { throw ("'" + $text + "' is not a value of " + $name + " in IIS") }
        }
        $element.SetAttributeValue($name, $value)
    }
    foreach ($child in $node.get_ChildNodes()) {
        if ($child.get_NodeType() -ne [System.Xml.XmlNodeType]::Element) { continue }
        $name = $child.get_Name()
        $collection = $element.Schema.CollectionSchema
        if ($null -ne $collection -and ($collection.AddElementNames -split ',') -ccontains $name) {
            $entries = $element.GetCollection()
            $entry = $entries.CreateElement($name)
            Copy-XmlToConfig $child $entry
            $null = $entries.Add($entry)
        } else {
            $schema = $element.Schema.ChildElementSchemas[$name]
            if ($null -eq $schema -or $schema.Name -cne $name) { throw ("<" + $node.get_Name() + "> has no element <" + $name + "> in IIS") }
            Copy-XmlToConfig $child ($element.GetChildElement($name))
        }
    }
}

function Copy-RuleXml([string] $text, $rule) {
    $document = [xml] $text
    # A DOCTYPE could declare entities that change the rule after the package was verified.
    if ($null -ne $document.get_DocumentType()) { throw 'The rule XML has a DOCTYPE' }
    $root = $document.get_DocumentElement()
    if ($root.get_Name() -cne 'rule') { throw ("The rule XML is a <" + $root.get_Name() + ">, not a <rule>") }
    Copy-XmlToConfig $root $rule
}

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-SiteRules $manager $in.site
    $index = Find-Rule $rules $in.ruleName
    if ($index -ge 0) { $rules.RemoveAt($index) } else { $index = $rules.Count }
    if ($null -ne $in.previousRuleXml) {
        # Back where emfleet's rule stood, which is where apply found the previous one.
        $rule = $rules.CreateElement('rule')
        Copy-RuleXml $in.previousRuleXml $rule
        $null = $rules.AddAt($index, $rule)
    }
    $manager.CommitChanges()
    $reply = @{ ok = $true }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
