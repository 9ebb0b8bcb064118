"""The wire contract: CloudEvents envelope, versioned payload models, published JSON Schemas and the one codec."""
