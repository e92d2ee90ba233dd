//! Firmware logic for replenish appliances (in progress).
#![no_std]
