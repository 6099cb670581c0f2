"""One sink per ChartMogul object, plus the sink that skips unknown streams."""
