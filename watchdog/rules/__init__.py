"""The rules file: its model, its loading with FILE:LINE problems, and the pure evaluators."""
