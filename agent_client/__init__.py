"""The home agent's desktop softphone."""
