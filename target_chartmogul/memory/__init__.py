"""The sync memory: what this loader wrote (the ledger), references looked up, and listings of what ChartMogul holds."""
