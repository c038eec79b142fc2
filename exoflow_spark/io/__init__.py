"""Inputs and outputs of tasks: exactly-once sinks, streaming tasks, iterations."""
