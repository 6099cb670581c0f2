"""Configuration: the settings schema, the object registry, reading --config and refusing unknown settings."""
