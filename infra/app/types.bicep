// Types shared by main.bicep and its modules.

@export()
@description('A site: its Exchange servers sit behind one relay hub (`emfleet agent --hub`) listening on the site\'s hybrid connection.')
type site = {
  @description('The site name as given to `emfleet servers add --site` (the Servers row\'s site).')
  name: string

  @description('The site\'s hybrid connection; default: site-{name in lower case}, which is also what `emfleet sites add` creates.')
  hybridConnection: string?
}
