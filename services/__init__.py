"""Everything that runs at the edges: producers, the CLI, the read API and the local stack."""
