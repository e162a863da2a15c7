"""The presets shipped with reenact-fx (YAML files in this folder; see reenact_fx.config.presets)."""
