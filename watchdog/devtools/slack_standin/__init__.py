"""A Slack Web API stand-in that prints what the bot posts (the demo, the tests)."""
