"""Slash commands and buttons: verification, transports, parsing, and the command service."""
