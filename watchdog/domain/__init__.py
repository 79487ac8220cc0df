"""The values every stage passes along (alert states, notifications, audit entries) and
the shapes of the names they carry (:mod:`watchdog.domain.names`)."""
