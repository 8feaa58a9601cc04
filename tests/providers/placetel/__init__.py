"""Tests of the Placetel provider package: parser, Call Control answers, webhook."""
