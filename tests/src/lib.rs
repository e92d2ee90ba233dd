//! Whole-system test helpers.
