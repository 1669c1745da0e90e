"""Configuration as code: apply_config reads a TOML or YAML file into the database, export_config writes it back."""
