# emfleet: IIS through Microsoft.Web.Administration (the library under the WebAdministration
# module that Microsoft's scripts use), rather than its cmdlets: one CommitChanges per change
# (EOMT.ps1 commits five times per rule), exact-name lookups instead of provider paths and XPath
# filters that a name would have to be spliced into, and the configuration schema, which tells
# defaults and types, for comparing rules. Dot-sourced after emfleet-common.ps1; functions only.

function New-ServerManager {
    Add-Type -AssemblyName 'Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35'
    New-Object Microsoft.Web.Administration.ServerManager
}

function Assert-Site($manager, [string] $site) {
    if ($null -eq $manager.Sites[$site]) { throw ("IIS has no site named '" + $site + "'") }
}

# Microsoft's EOMT installs URL Rewrite when it is missing (EOMT.ps1, lines 265-320); emfleet
# does not install software, it says plainly what is missing.
function Assert-UrlRewrite($manager) {
    $found = $false
    foreach ($module in $manager.GetApplicationHostConfiguration().GetSection('system.webServer/globalModules').GetCollection()) {
        if ([string] $module.GetAttributeValue('name') -eq 'RewriteModule') { $found = $true }
    }
    if (-not $found) { throw 'IIS URL Rewrite is not installed on this server: system.webServer/globalModules has no RewriteModule. Install URL Rewrite 2.1 (as Microsoft EOMT does), then apply again.' }
    try {
        $null = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/rewrite/rules')
    } catch {
        throw ('IIS URL Rewrite is registered but its section system.webServer/rewrite/rules is not declared (' + $_.Exception.Message + '); repair the URL Rewrite installation.')
    }
}

# The rules of the site's own web.config (inetpub\wwwroot\web.config for the Default Web Site):
# where Microsoft writes them (-PSPath "IIS:\Sites\<site>": EOMT.ps1 line 330, EOMTv2.ps1 line 250),
# tells admins to look (EOMT.ps1 line 780) and where HealthChecker accepts them
# (Invoke-AnalyzerSecurityCve-2022-41040.NotPublished.ps1 lines 21 and 48). The collection also
# holds the rules inherited from applicationHost.config; only those stored locally are the site's own.
function Get-SiteRulesSection($manager, [string] $site) {
    $manager.GetWebConfiguration($site).GetSection('system.webServer/rewrite/rules')
}

function Find-Rule($rules, [string] $name) {
    for ($index = 0; $index -lt $rules.Count; $index++) {
        if ([string]::Equals([string] $rules[$index].GetAttributeValue('name'), $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $index }
    }
    -1
}

# The position of a rule among the site's own rules, or -1.
function Get-LocalPosition($rules, [int] $index) {
    if ($index -lt 0 -or -not $rules[$index].IsLocallyStored) { return -1 }
    $position = 0
    for ($other = 0; $other -lt $index; $other++) { if ($rules[$other].IsLocallyStored) { $position++ } }
    $position
}

# Where to insert so that the rule becomes the site's own rule number $position (inherited rules come first).
function Get-InsertIndex($rules, $position) {
    if ($null -eq $position) { return $rules.Count }
    $seen = 0
    for ($index = 0; $index -lt $rules.Count; $index++) {
        if ($rules[$index].IsLocallyStored) {
            if ($seen -eq [int] $position) { return $index }
            $seen++
        }
    }
    $rules.Count
}

function Get-LocalRuleCount($rules) {
    $count = 0
    foreach ($rule in $rules) { if ($rule.IsLocallyStored) { $count++ } }
    $count
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

function Get-RuleXml($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $false
    $document.get_OuterXml()
}

# What a rule does, without its name: a rule is recognised by content, whatever it is called.
function Get-RuleContent($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $true
    $document.get_DocumentElement().RemoveAttribute('name')
    $document.get_OuterXml()
}

function Test-RuleContent($rules, [string] $content) {
    foreach ($rule in $rules) {
        if ((Get-RuleContent $rule) -ceq $content) { return $true }
    }
    $false
}

# Where a rule of the site is not in force: each application whose own web.config clears the
# inherited rules or removes this one. HealthChecker walks the same way, application by
# application (Get-URLRewriteRule.ps1 lines 36-109) and flags exactly this under HttpProxy
# (Invoke-AnalyzerSecurityCve-2022-41040.NotPublished.ps1 lines 87-107).
function Get-Cancellations($manager, [string] $site, [string] $content) {
    $cancelled = @()
    foreach ($application in $manager.Sites[$site].Applications) {
        if ($application.Path -eq '/') { continue }
        $rules = $manager.GetWebConfiguration($site, $application.Path).GetSection('system.webServer/rewrite/rules').GetCollection()
        if (-not (Test-RuleContent $rules $content)) { $cancelled += ($application.Path + ': not in force there; its web.config clears the inherited rules or removes this one') }
    }
    , $cancelled
}

function Get-AppPool($manager, [string] $name) {
    $pool = $manager.ApplicationPools[$name]
    if ($null -eq $pool) { throw ("IIS has no application pool named '" + $name + "'") }
    $pool
}

# ExchangeMitigations.ps1 polls the pool state once a second up to a limit (CheckOperationSuccess, lines 620-639).
function Wait-AppPoolState($pool, [string] $state) {
    while ([string] $pool.State -ne $state) {
        if ((Get-Remaining) -le [TimeSpan]::Zero) { throw ("Application pool " + $pool.Name + " is " + $pool.State + ", not " + $state + ", after waiting; it may still get there") }
        Start-Sleep -Milliseconds 500
    }
}
