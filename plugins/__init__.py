"""Built-in sedkit plugins, installed as ``sedkit_plugins`` and registered through entry points."""
