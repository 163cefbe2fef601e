"""Wire protocols: the XML-RPC resource and client, and the wake channels."""
