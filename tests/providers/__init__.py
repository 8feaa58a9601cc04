"""Tests of the provider registry and of what every provider package declares."""
