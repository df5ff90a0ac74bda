"""Unit tests: pure functions and single modules, with fakes for anything outside them."""
