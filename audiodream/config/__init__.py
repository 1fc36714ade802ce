"""Configuration: typed sections (schema) and the YAML loader with dotted overrides."""

from audiodream.config.loader import ConfigError, load_config, save_config, config_from_dict, config_to_dict
from audiodream.config.schema import Config, STAGES, DEFAULT_STAGES

__all__ = ["Config", "ConfigError", "STAGES", "DEFAULT_STAGES", "load_config", "save_config", "config_from_dict", "config_to_dict"]
