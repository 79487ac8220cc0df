"""Slack side of the bot: messages, delivery, commands, request verification, Socket Mode."""
