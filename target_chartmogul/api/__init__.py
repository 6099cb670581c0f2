"""The ChartMogul API client: HTTP calls with retries and pacing, error bodies, the dry-run client, observers."""
