"""FGRN network pieces."""
