"""Helpers of the interop and contract suites: a test-local protocol client, orchestrator harnesses."""
