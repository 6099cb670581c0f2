"""Reading and comparing values: dates, numbers, booleans, text and codes, custom attributes, validation, JSON."""
