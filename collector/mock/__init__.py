"""A mock inference endpoint with exact, configurable timings and injected faults."""
