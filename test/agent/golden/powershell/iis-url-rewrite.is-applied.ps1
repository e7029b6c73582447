# emfleet iis-url-rewrite.is-applied: constant text; what it acts on arrives as JSON on standard input.

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

# Every rule in force for the site, those of its web.config included.
function Get-EffectiveRules($manager, [string] $site) {
    $rules = $manager.GetWebConfiguration($site).GetSection('system.webServer/rewrite/rules').GetCollection()
    return , $rules
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

# What a rule does, without its name: a rule is recognised by content, whatever it is called.
function Get-RuleContent($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $true
    $document.get_DocumentElement().RemoveAttribute('name')
    $document.get_OuterXml()
}

try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json

    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-EffectiveRules $manager $in.site
    # The package's rule goes through the same schema as the site's, in an element never added.
    $wanted = $rules.CreateElement('rule')
    Copy-RuleXml $in.ruleXml $wanted
    $content = Get-RuleContent $wanted
    $applied = $false
    foreach ($rule in $rules) {
        if ((Get-RuleContent $rule) -ceq $content) { $applied = $true }
    }
    $reply = @{ applied = $applied }

    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
