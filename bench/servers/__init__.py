"""Reference servers for the fan-out and idle scenarios, each run as its own process."""
