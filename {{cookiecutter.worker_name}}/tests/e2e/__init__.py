"""End-to-end tests: the docker compose stack (Redis + mock orchestrator + this worker's image)."""
