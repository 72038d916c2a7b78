"""Sources that yield documents with metadata: MediaWiki dumps and live wikis, wiki exports."""
