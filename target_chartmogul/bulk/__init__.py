"""ChartMogul's bulk JSON import: new objects of a backfill in a few large asynchronous requests."""
