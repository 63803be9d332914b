"""Stand-ins for tests, benchmarks and ``--model synthetic``: analytic shapes and occupancy fields,
synthetic frame sources and the sphere model. numpy (torch for the fields, imported with them)."""
