"""Register maps of common devices, named by a config instead of repeating the map."""
