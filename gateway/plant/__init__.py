"""Plant rules and maintenance counters: hard limits, operating hours, starts, trips, EOH."""
