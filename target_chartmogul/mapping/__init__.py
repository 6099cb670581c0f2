"""Record-to-payload mapping, one module per ChartMogul object."""
