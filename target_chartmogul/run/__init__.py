"""One run: its context, the write order, stopping, progress, the summary and report, input, rejects, SDK hooks."""
