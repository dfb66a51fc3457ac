"""`fmb prepare`: source datasets -> prompts -> FMBench payload files, and token counting shared with the collector."""
