"""`python -m bench`: throughput, pickup/cancel latency, memory, CPU and image numbers of a baked worker."""
