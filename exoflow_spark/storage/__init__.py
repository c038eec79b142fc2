"""The workflow log and checkpoint files: the one owner of the storage layout."""
