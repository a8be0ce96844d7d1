"""Automation: schedules (cron, interval, data change, after another schedule), the
scheduler that fires each firing exactly once, notifications and continuous training.

Records live in the store (``nbops.store.schedules``), so a team store shares them."""
