"""Alerts in Slack: Block Kit messages, storms, and the notifier that posts and edits them."""
