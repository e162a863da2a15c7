"""Configuration files users share: presets (YAML, validated against the components' schemas)."""
