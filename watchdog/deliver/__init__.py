"""Delivery: the durable outbox, the notifier interface, and the terminal notifier."""
