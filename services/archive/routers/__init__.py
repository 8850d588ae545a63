"""One router per resource of the archive API."""
