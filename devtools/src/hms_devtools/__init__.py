"""hms-ops developer tools: documents generated from the contracts."""
