"""Tests of the Stringee provider package: call events, SCCO answers, webhooks."""
