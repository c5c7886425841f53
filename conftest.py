pytest_plugins = ["hms_kit.testing.plugin"]
