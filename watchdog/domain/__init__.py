"""The values every stage passes along: alert states, notifications, audit entries."""
