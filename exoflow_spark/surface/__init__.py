"""What users touch besides the verbs in api.py: the CLI, progress, pictures, profiles."""
