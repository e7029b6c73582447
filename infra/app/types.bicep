// Types shared by main.bicep and its modules.

@export()
@description('An Exchange server with its emfleet agent.')
type server = {
  @description('The server name as registered with `emfleet servers add` (its FQDN).')
  name: string

  @description('The hybrid connection its agent listens on; default: the server name in lower case, which is also what `emfleet servers add` records when --relay-hc is not given.')
  hybridConnection: string?
}
