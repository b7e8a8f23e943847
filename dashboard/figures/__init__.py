"""The service figures: what counts, how it is counted, and what is shown."""
