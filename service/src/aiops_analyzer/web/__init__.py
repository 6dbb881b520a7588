"""Web pages of the analyzer: one page per analysis (signed links) and a list behind a login."""
