//! Test support for Sluice end-to-end tests.
