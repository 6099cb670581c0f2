"""Reconcile mode: read the input and ChartMogul, write nothing, report what is missing, different or extra."""
