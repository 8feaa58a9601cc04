"""Tests of the Teleforge Click2Dial provider: dial rules and client, notifications, listener."""
