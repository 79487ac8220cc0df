"""Stand-ins for development, tests and the demo. Only the CLI entry points import these;
product code never does."""
