"""The `nurture` subcommands, one module per capability; nurture/cli.py holds the group."""
