pytest_plugins = ["hms_testing.plugin"]
