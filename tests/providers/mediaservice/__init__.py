"""Tests of desk.providers.mediaservice, with payloads from the provider's own document."""
